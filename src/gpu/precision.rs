//! Numeric precision: what the user asks for ([`Precision`]) and what a graph's convolutions run on once
//! resolved for one adapter ([`ConvPath`]).

use crate::error::{Error, Result};
use crate::gpu::{backend, DType, GpuContext};

/// Numeric precision of the network: how feature maps and weights are stored and what the
/// convolutions run on.
///
/// Softmax, decoding and NMS always run in f32, and every path accumulates in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// fp32 everywhere: reproduces the reference outputs.
    F32,
    /// Feature maps and conv weights stored as f16 (half the memory traffic), arithmetic in f32.
    /// An error naming the adapter when it lacks `SHADER_F16`.
    F16,
    /// As `F16`, with convolutions on cooperative matrices (tensor cores): f16 operands, f32
    /// accumulators. An error naming the adapter when it has no f16 cooperative matrices of 8×8 or 16×16.
    F16Coop,
    /// The fastest path the adapter supports: `F16Coop`, else `F16`, else `F32`; `F32` on a CPU adapter
    /// (lavapipe), where neither f16 path is faster.
    #[default]
    Auto,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::F16Coop => "f16-coop",
            Precision::Auto => "auto",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [
            Precision::F32,
            Precision::F16,
            Precision::F16Coop,
            Precision::Auto,
        ]
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| {
            Error::Config(format!(
                "unknown precision '{s}': expected f32, f16, f16-coop or auto"
            ))
        })
    }
}

/// What a graph's convolutions run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConvPath {
    /// The register-tiled, depthwise and direct kernels (f32 arithmetic, f32 or f16 maps).
    #[default]
    F32,
    /// Cooperative matrices of `size`×`size`×`size` (8 or 16) with f16 operands and f32 accumulators;
    /// `subgroup` is the adapter's (smallest, largest) subgroup size (a workgroup is 4 of the largest).
    Coop { size: u32, subgroup: [u32; 2] },
}

impl ConvPath {
    /// e.g. `f32` or `coop 16x16`.
    pub fn describe(self) -> String {
        match self {
            ConvPath::F32 => "f32".into(),
            ConvPath::Coop { size, .. } => format!("coop {size}x{size}"),
        }
    }

    /// The convolution path of `p` on the adapter of `ctx`.
    pub fn resolve(p: Precision, ctx: &GpuContext) -> Result<ConvPath> {
        Ok(Numerics::resolve(p, ctx)?.conv)
    }
}

/// Which register-tiled GEMM the convolutions of [`ConvPath::F32`] run on (those that are not depthwise,
/// shallow or cooperative-matrix ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GemmTier {
    /// `Wide` on discrete and integrated GPUs, `Small` on CPU adapters ([`GemmTier::wide_for`]).
    #[default]
    Auto,
    /// 256 threads, 128×128 tiles, register prefetch, packed weights (`shaders/conv2d_gemm.wgsl`).
    Wide,
    /// 64 threads, 8×8 outputs per thread (`shaders/conv2d.wgsl`).
    Small,
}

impl GemmTier {
    pub fn name(self) -> &'static str {
        match self {
            GemmTier::Auto => "auto",
            GemmTier::Wide => "wide",
            GemmTier::Small => "small",
        }
    }

    /// What `Auto` picks on an adapter of this kind: the wide tier on real GPUs only. 256 threads and 128×128
    /// tiles are the shape with which llama.cpp's Vulkan convolution reached 43% of an RTX 3090's fp32 peak. On
    /// lavapipe (`Cpu`) the wide tier ran at 0.75–1.3× the small one and 0.55–1.1× the small tier's per-shape
    /// choices (benches/ops.rs), so CPU adapters keep the small tier.
    pub fn wide_for(device: wgpu::DeviceType) -> bool {
        matches!(
            device,
            wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu
        )
    }

    /// The tier that runs on an adapter of this kind: `Wide` or `Small`, never `Auto`.
    pub fn resolve(self, device: wgpu::DeviceType) -> GemmTier {
        match self {
            GemmTier::Auto if Self::wide_for(device) => GemmTier::Wide,
            GemmTier::Auto => GemmTier::Small,
            t => t,
        }
    }

    /// Whether convolutions run on the wide tier on an adapter of this kind.
    pub fn wide_on(self, device: wgpu::DeviceType) -> bool {
        self.resolve(device) == GemmTier::Wide
    }
}

/// A precision resolved for one adapter: feature-map storage and convolution path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Numerics {
    /// Never `Auto`.
    pub precision: Precision,
    pub maps: DType,
    pub conv: ConvPath,
    /// Whether [`ConvPath::F32`] convolutions may run on the wide GEMM tier ([`GemmTier`] resolved).
    pub wide_gemm: bool,
}

impl Numerics {
    /// Resolves `p` for the adapter of `ctx`; an explicit precision the adapter cannot run is an error
    /// naming the adapter and what it lacks.
    pub fn resolve(p: Precision, ctx: &GpuContext) -> Result<Numerics> {
        // Besides the adapter's own features, only paths whose shaders wgpu translates for its backend
        // (tests/translate.rs checks both tables against naga's writers).
        let backend = ctx.info.backend;
        let coop = ctx
            .coop_size()
            .filter(|_| backend::coop_matrix_translates(backend))
            .map(|size| ConvPath::Coop {
                size,
                subgroup: [ctx.info.subgroup_min_size, ctx.info.subgroup_max_size],
            });
        let f16 =
            ctx.features.contains(wgpu::Features::SHADER_F16) && backend::f16_translates(backend);
        let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
        let lacks = |what: &str| {
            Error::Config(format!(
                "precision {p} needs {what}, which adapter '{}' ({:?}) does not offer; use --precision f32 or auto",
                ctx.info.name, ctx.info.backend
            ))
        };
        let (precision, maps, conv) = match p {
            Precision::F32 => (p, DType::F32, ConvPath::F32),
            Precision::F16 if f16 => (p, DType::F16, ConvPath::F32),
            Precision::F16 => return Err(lacks("shader-f16")),
            Precision::F16Coop => match coop {
                Some(c) => (p, DType::F16, c),
                None => return Err(lacks(
                    "f16 cooperative matrices (8x8 or 16x16 with f32 accumulators, and subgroups)",
                )),
            },
            // A CPU adapter (lavapipe) gains nothing from either: measured there, f16 storage ran at
            // 0.96-1.15x the time of f32 and emulated cooperative matrices at 3.1-4.4x, so it keeps the
            // exact f32 path. GPUs have tensor cores and memory bandwidth to gain.
            Precision::Auto if cpu => (Precision::F32, DType::F32, ConvPath::F32),
            Precision::Auto => match (coop, f16) {
                (Some(c), _) => (Precision::F16Coop, DType::F16, c),
                (None, true) => (Precision::F16, DType::F16, ConvPath::F32),
                (None, false) => (Precision::F32, DType::F32, ConvPath::F32),
            },
        };
        Ok(Numerics {
            precision,
            maps,
            conv,
            wide_gemm: GemmTier::Auto.wide_on(ctx.info.device_type),
        })
    }

    /// The GEMM tier that runs: `Wide` or `Small`.
    pub fn gemm(self) -> GemmTier {
        if self.wide_gemm {
            GemmTier::Wide
        } else {
            GemmTier::Small
        }
    }

    /// `self` with the GEMM tier `t` (resolved for the adapter of `ctx`).
    pub fn with_gemm(self, t: GemmTier, ctx: &GpuContext) -> Numerics {
        Numerics {
            wide_gemm: t.wide_on(ctx.info.device_type),
            ..self
        }
    }

    /// fp32 everywhere.
    pub const F32: Numerics = Numerics {
        precision: Precision::F32,
        maps: DType::F32,
        conv: ConvPath::F32,
        wide_gemm: false,
    };

    /// e.g. `f32`, `f16 (wide GEMM)` or `f16-coop (16x16)`.
    pub fn describe(self) -> String {
        match self.conv {
            ConvPath::Coop { size, .. } => format!("{} ({size}x{size})", self.precision),
            ConvPath::F32 if self.wide_gemm => format!("{} (wide GEMM)", self.precision),
            ConvPath::F32 => self.precision.to_string(),
        }
    }

    /// The graph that networks of these numerics are built in.
    pub fn graph(self) -> crate::gpu::Graph {
        crate::gpu::Graph::with_numerics(self.conv, self.maps).with_big_tiles(self.wide_gemm)
    }
}
