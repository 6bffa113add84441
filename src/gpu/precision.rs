//! Numeric precision: what the user asks for ([`Precision`]) and what a graph's convolutions run on once
//! resolved for one adapter ([`ConvPath`]).

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// Numeric precision of the network's convolutions.
///
/// Softmax, decoding and NMS always run in f32, and every path accumulates in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// fp32 everywhere: reproduces the reference outputs.
    F32,
    /// Convolutions on cooperative matrices (tensor cores): f16 operands, f32 accumulators. Feature maps
    /// stay f32 in memory; each operand tile is rounded to f16 as it is staged in workgroup memory.
    /// An error naming the adapter when it has no f16 cooperative matrices of 8×8 or 16×16.
    F16Coop,
    /// The fastest path the adapter supports: `F16Coop` where available, else `F32`.
    #[default]
    Auto,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
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
        match s {
            "f32" => Ok(Precision::F32),
            "f16-coop" => Ok(Precision::F16Coop),
            "auto" => Ok(Precision::Auto),
            _ => Err(Error::Config(format!(
                "unknown precision '{s}': expected f32, f16-coop or auto"
            ))),
        }
    }
}

/// What a graph's convolutions run on, resolved for one adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConvPath {
    /// The fp32 kernels.
    #[default]
    F32,
    /// Cooperative matrices of `size`×`size`×`size` (8 or 16) with f16 operands and f32 accumulators;
    /// `subgroup` is the adapter's (smallest, largest) subgroup size (a workgroup is 4 of the largest).
    Coop { size: u32, subgroup: [u32; 2] },
}

impl ConvPath {
    /// Resolves `p` for the adapter of `ctx`.
    pub fn resolve(p: Precision, ctx: &GpuContext) -> Result<ConvPath> {
        let coop = ctx.coop_size().map(|size| ConvPath::Coop {
            size,
            subgroup: [ctx.info.subgroup_min_size, ctx.info.subgroup_max_size],
        });
        match p {
            Precision::F32 => Ok(ConvPath::F32),
            Precision::Auto => Ok(coop.unwrap_or(ConvPath::F32)),
            Precision::F16Coop => coop.ok_or_else(|| {
                Error::Config(format!(
                    "precision f16-coop needs f16 cooperative matrices (8x8 or 16x16 with f32 accumulators), \
                     which adapter '{}' ({:?}) does not offer; use --precision f32 or auto",
                    ctx.info.name, ctx.info.backend
                ))
            }),
        }
    }

    /// The precision this path runs, as reported to users.
    pub fn precision(self) -> Precision {
        match self {
            ConvPath::F32 => Precision::F32,
            ConvPath::Coop { .. } => Precision::F16Coop,
        }
    }

    /// e.g. `f32` or `f16-coop (16x16)`.
    pub fn describe(self) -> String {
        match self {
            ConvPath::F32 => "f32".into(),
            ConvPath::Coop { size, .. } => format!("f16-coop ({size}x{size})"),
        }
    }
}
