//! 2-D convolution with a fused epilogue: `out = act(conv(x) + bias + residual)`.
//!
//! Shapes: input `[N, C_in, H, W]`, weight `[C_out, C_in / groups, KH, KW]` (OIHW), bias `[C_out]`,
//! residual and output `[N, C_out, Ho, Wo]` with `Ho = (H + top + bottom − dy·(KH−1) − 1) / sy + 1`
//! (floor; likewise `Wo`). With `into = Some((t, c))` the result fills channels `c..c + C_out` of `t`
//! (`[N, C_total, Ho, Wo]`), so concatenations cost nothing.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Binding, ConvPath, Graph, StepDesc, TensorId};
pub use crate::ops::conv2d_layer::Conv2d;
use crate::ops::{conv2d_coop, Shader};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub c_in: u32,
    pub h: u32,
    pub w: u32,
    pub c_out: u32,
    pub ho: u32,
    pub wo: u32,
    /// Channels of the tensor written (C_out unless writing `into` a larger one).
    pub c_total: u32,
    pub c_off: u32,
    pub kh: u32,
    pub kw: u32,
    pub sy: u32,
    pub sx: u32,
    pub pt: u32,
    pub pl: u32,
    pub dy: u32,
    pub dx: u32,
    pub cin_g: u32,
    pub cout_g: u32,
    /// GEMM depth `cin_g · kh · kw`.
    pub k: u32,
    /// `n · ho · wo`.
    pub p_total: u32,
    /// Output-channel tiles per group (GEMM entries).
    pub m_tiles: u32,
    /// The packed weights' padded depth and channels (`conv2d_gemm`'s `[groups, kp, mp]`); 0 elsewhere.
    pub kp: u32,
    pub mp: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 96);

pub static SHADER: Shader = crate::shader!("conv2d", Params);
pub static SHADER_F16: Shader = crate::shader_f16!("conv2d", Params);

/// Threads along output channels (`TMT`) of a 64-thread GEMM workgroup: its tile is 8·TMT channels ×
/// 8·64/TMT pixels. Narrow tiles keep small-C_out layers (heads) from wasting most of the work.
fn gemm_threads_m(cout_g: usize) -> usize {
    match cout_g {
        0..=16 => 2,
        17..=32 => 4,
        _ => 8,
    }
}
/// Pixel tiles per row of the dispatch before the rest wraps into z (shaders: `wid.x + wid.z * nwg.x`).
/// Far below the 65,535 limit so that everyday large maps exercise the same, tested wrap.
const MAX_TILES_X: usize = 4096;
/// Workgroup size of the 1-D entries (depthwise, naive).
const WG_1D: u32 = 64;
/// Output channels per thread of `conv2d_1x1_direct` (`PW_M` in the shader).
const PW_M: usize = 16;
/// Outputs along a row per thread of `conv2d_dw3` (`DW_X` in the shader).
const DW3_X: usize = 8;

/// Which shader entry computes the conv. `Auto` picks from the shape; the others exist for tests
/// and benchmarks and fail with an error when the conv does not fit them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConvKernel {
    #[default]
    Auto,
    /// Register-tiled implicit GEMM (any conv).
    Gemm,
    /// GEMM without im2col arithmetic: 1×1 kernel, stride 1, no padding.
    Pointwise,
    /// 1×1 kernel, stride 1, no padding: 4 pixels × 16 channels per thread, no workgroup memory.
    PointwiseDirect,
    /// C_in / groups == 1 (depthwise, also with a channel multiplier).
    Depthwise,
    /// Depthwise 3×3, dilation 1, equal stride 1 or 2 in y and x (MobileNet's): 8 outputs per thread
    /// from a row segment held in registers.
    Depthwise3x3,
    /// One output per thread (any conv); the baseline.
    Naive,
    /// Implicit GEMM on cooperative matrices, f16 operands and f32 accumulators (any conv); needs a graph
    /// whose [`ConvPath`] is `Coop`.
    Coop,
    /// 256-thread register-tiled GEMM with 128×128 tiles, narrower for few channels (any conv; the
    /// `conv2d_gemm` tier).
    Gemm128,
}

impl ConvKernel {
    fn entry(self) -> &'static str {
        match self {
            ConvKernel::Auto | ConvKernel::Gemm => "conv2d",
            ConvKernel::Pointwise => "conv2d_1x1",
            ConvKernel::PointwiseDirect => "conv2d_1x1_direct",
            ConvKernel::Depthwise => "conv2d_depthwise",
            ConvKernel::Depthwise3x3 => "conv2d_dw3",
            ConvKernel::Naive => "conv2d_naive",
            ConvKernel::Coop => "conv2d_coop",
            ConvKernel::Gemm128 => "conv2d_gemm",
        }
    }
}

/// out = act(conv(x) + bias + residual). `residual`, if given, has the output's shape [N, C_out, Ho, Wo].
/// `into = Some((t, c_offset))` writes the C_out channels at channels c_offset.. of the larger tensor t
/// ([N, C_total, Ho, Wo]; C_offset + C_out ≤ C_total) so a concat costs nothing, and returns t;
/// otherwise a new tensor named `label` is created and returned.
pub fn conv2d(
    g: &mut Graph,
    label: &str,
    x: TensorId,
    conv: &Conv2d,
    residual: Option<TensorId>,
    into: Option<(TensorId, usize)>,
) -> Result<TensorId> {
    conv2d_with(g, label, x, conv, residual, into, ConvKernel::Auto)
}

/// [`conv2d`] with an explicit choice of shader entry (tests, benchmarks).
pub fn conv2d_with(
    g: &mut Graph,
    label: &str,
    x: TensorId,
    conv: &Conv2d,
    residual: Option<TensorId>,
    into: Option<(TensorId, usize)>,
    kernel: ConvKernel,
) -> Result<TensorId> {
    let input = g.nchw(label, x)?;
    let oshape = conv.out_shape(label, input)?;
    let [n, c_in, h, w] = input;
    let [_, c_out, ho, wo] = oshape;
    let [_, cin_g, kh, kw] =
        <[usize; 4]>::try_from(conv.weight.shape.as_slice()).unwrap_or_default();
    if let Some(r) = residual {
        if g.shape(r) != oshape.as_slice() {
            return Err(Error::shape(
                label,
                format!(
                    "residual '{}' has shape {:?}, expected the output shape {oshape:?}",
                    g.info(r).name,
                    g.shape(r)
                ),
            ));
        }
    }
    let (out, c_total, c_off) = match into {
        Some((t, off)) => {
            let ts = g.shape(t);
            let ok =
                ts.len() == 4 && ts[0] == n && ts[2] == ho && ts[3] == wo && off + c_out <= ts[1];
            if !ok {
                return Err(Error::shape(
                    label,
                    format!(
                        "cannot write output {oshape:?} at channels {off}..{} of '{}' {ts:?}: needs [{n}, ≥{}, {ho}, {wo}]",
                        off + c_out,
                        g.info(t).name,
                        off + c_out
                    ),
                ));
            }
            if t == x || Some(t) == residual {
                return Err(Error::shape(
                    label,
                    format!("output '{}' must not also be an input", g.info(t).name),
                ));
            }
            (t, ts[1], off)
        }
        None => (g.tensor_as(label, &oshape, g.dtype(x))?, c_out, 0),
    };
    // Input, residual and output share the element type (the shaders' `Map`); so do the weights.
    let mut maps = vec![x, out];
    maps.extend(residual);
    let dtype = g.same_dtype(label, &maps)?;

    let pointwise = kh == 1 && kw == 1 && conv.stride == [1, 1] && conv.pad == [0; 4];
    let groups = conv.groups;
    let cout_g = c_out / groups;
    let dw3 = cin_g == 1
        && (kh, kw) == (3, 3)
        && conv.dilation == [1, 1]
        && conv.stride[0] == conv.stride[1]
        && conv.stride[0] <= 2;
    // The GEMM depth of the implicit-GEMM kernels.
    let k = cin_g * kh * kw;
    let coop = match g.conv_path() {
        ConvPath::Coop { size, subgroup } => Some((size, subgroup)),
        ConvPath::F32 => None,
    };
    let kernel = match kernel {
        ConvKernel::Auto if coop.is_some() && conv2d_coop::pays(cin_g, cout_g, k) => {
            ConvKernel::Coop
        }
        // The conv2d_gemm tier, on adapters the graph was built for (see `Graph::with_big_tiles`).
        ConvKernel::Auto if g.big_tiles() && super::conv2d_gemm::pays(cin_g, k) => {
            ConvKernel::Gemm128
        }
        ConvKernel::Auto if dw3 => ConvKernel::Depthwise3x3,
        ConvKernel::Auto if cin_g == 1 => ConvKernel::Depthwise,
        // Measured on lavapipe (RetinaFace 512x512): 2.2x the GEMM at C_in 16 -> 96, 1.45x at 24 -> 144,
        // 1.09x at 32 -> 16, but 0.93x at 32 -> 192 and 0.75-0.95x from C_in 96 on.
        ConvKernel::Auto if pointwise && (cin_g <= 24 || (cin_g <= 32 && cout_g <= 32)) => {
            ConvKernel::PointwiseDirect
        }
        ConvKernel::Auto if pointwise => ConvKernel::Pointwise,
        ConvKernel::Auto => ConvKernel::Gemm,
        k => k,
    };
    if kernel == ConvKernel::Coop && coop.is_none() {
        return Err(Error::shape(
            label,
            "the cooperative-matrix kernel needs a graph built for ConvPath::Coop",
        ));
    }
    if (matches!(kernel, ConvKernel::Pointwise | ConvKernel::PointwiseDirect) && !pointwise)
        || (kernel == ConvKernel::Depthwise && cin_g != 1)
        || (kernel == ConvKernel::Depthwise3x3 && !dw3)
    {
        // Depthwise3x3 also needs dilation 1 and stride 1 or 2, equal in y and x.
        return Err(Error::shape(
            label,
            format!(
                "{kernel:?} kernel cannot run weight {:?} stride {:?} pad {:?} dilation {:?}",
                conv.weight.shape, conv.stride, conv.pad, conv.dilation
            ),
        ));
    }

    let tmt = gemm_threads_m(cout_g);
    // (channels, pixels) per workgroup of the tiled entries.
    let coop_tile = coop.map_or(0, |(size, _)| conv2d_coop::TILE_MATRICES * size as usize);
    let (tile_m, tile_n) = match kernel {
        ConvKernel::PointwiseDirect => (PW_M, 4 * 64),
        ConvKernel::Coop => (coop_tile, coop_tile),
        ConvKernel::Gemm128 => {
            let t = super::conv2d_gemm::tile(cout_g, groups, n * ho * wo);
            (t.channels(), t.pixels())
        }
        _ => (8 * tmt, 8 * 64 / tmt),
    };
    let m_tiles = cout_g.div_ceil(tile_m);
    let p_total = n * ho * wo;
    let workgroups_are_tiles = matches!(kernel, ConvKernel::Gemm | ConvKernel::Pointwise);
    let workgroups = match kernel {
        ConvKernel::Depthwise => dispatch_1d(n * c_out * ho * wo.div_ceil(4), WG_1D),
        ConvKernel::Depthwise3x3 => dispatch_1d(n * c_out * ho * wo.div_ceil(DW3_X), WG_1D),
        ConvKernel::Naive => dispatch_1d(n * c_out * ho * wo, WG_1D),
        _ => {
            let tiles = p_total.div_ceil(tile_n);
            let z = tiles.div_ceil(MAX_TILES_X);
            let y = groups * m_tiles;
            [tiles.div_ceil(z) as u32, y as u32, z as u32]
        }
    };
    // The wide and cooperative-matrix tiers read their weights packed k-major (`pack_kmajor`).
    let packed = match (kernel, coop) {
        (ConvKernel::Gemm128, _) => Some(super::conv2d_gemm::packed_layout(groups, cout_g, k)),
        (ConvKernel::Coop, Some((size, _))) => {
            Some(conv2d_coop::packed_layout(groups, cout_g, k, size))
        }
        _ => None,
    };
    let u = |v: usize| v as u32;
    let params = Params {
        n: u(n),
        c_in: u(c_in),
        h: u(h),
        w: u(w),
        c_out: u(c_out),
        ho: u(ho),
        wo: u(wo),
        c_total: u(c_total),
        c_off: u(c_off),
        kh: u(kh),
        kw: u(kw),
        sy: u(conv.stride[0]),
        sx: u(conv.stride[1]),
        pt: u(conv.pad[0]),
        pl: u(conv.pad[2]),
        dy: u(conv.dilation[0]),
        dx: u(conv.dilation[1]),
        cin_g: u(cin_g),
        cout_g: u(cout_g),
        k: u(k),
        p_total: u(p_total),
        m_tiles: u(m_tiles),
        kp: packed.map_or(0, |l| u(l.kp)),
        mp: packed.map_or(0, |l| u(l.mp)),
    };
    let dw_s = if kernel == ConvKernel::Depthwise3x3 {
        conv.stride[0]
    } else {
        1
    };
    let (shader, entry, mut constants) = match (kernel, coop) {
        (ConvKernel::Coop, Some((size, subgroup))) => {
            let (shader, entry) = conv2d_coop::shader(size, dtype)?;
            let constants = vec![
                ("HAS_BIAS", conv.bias.is_some() as u32 as f64),
                ("HAS_RES", residual.is_some() as u32 as f64),
                ("SG", subgroup[1] as f64),
                ("SG_MIN", subgroup[0] as f64),
            ];
            (shader, entry, constants)
        }
        (ConvKernel::Gemm128, _) => {
            use super::conv2d_gemm as tier;
            let mut constants = vec![
                ("HAS_BIAS", conv.bias.is_some() as u32 as f64),
                ("HAS_RES", residual.is_some() as u32 as f64),
            ];
            constants.extend(tier::constants(tier::tile(cout_g, groups, p_total)));
            let entry = tier::entry(pointwise, ho * wo);
            (
                crate::ops::variant(dtype, &tier::SHADER, &tier::SHADER_F16),
                entry,
                constants,
            )
        }
        _ => {
            let constants = vec![
                ("HAS_BIAS", conv.bias.is_some() as u32 as f64),
                ("HAS_RES", residual.is_some() as u32 as f64),
                ("WG", WG_1D as f64),
                // Only the GEMM entries read TMT; a fixed value elsewhere avoids duplicate pipelines.
                ("TMT", if workgroups_are_tiles { tmt } else { 8 } as f64),
                // Only conv2d_dw3 reads DW_S.
                ("DW_S", dw_s as f64),
            ];
            let shader = crate::ops::variant(dtype, &SHADER, &SHADER_F16);
            (shader, kernel.entry(), constants)
        }
    };
    constants.extend(conv.act.constants());
    // Absent residual / bias: bind a buffer the step reads anyway; the shader never touches it.
    let bias: Binding = conv.bias.as_ref().unwrap_or(&conv.weight).into();
    if conv.weight.dtype != dtype {
        return Err(Error::shape(
            label,
            format!(
                "weight '{}' is stored as {:?}, the feature maps as {dtype:?}: both must match",
                conv.weight.name, conv.weight.dtype
            ),
        ));
    }
    let weight = match packed {
        // A trainable weight changes under the plan: repacked on every run.
        Some(l) if conv.weight.is_trainable() => {
            super::pack_kmajor::pack(g, label, &conv.weight, l)?.into()
        }
        Some(l) => super::pack_kmajor::derived(label, &conv.weight, l)?,
        None => Binding::from(&conv.weight),
    };
    g.push(StepDesc {
        label: label.to_string(),
        shader,
        entry,
        constants,
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![
            x.into(),
            residual.unwrap_or(x).into(),
            weight,
            bias,
            out.into(),
        ],
        workgroups,
        flops: crate::gpu::graph::mac_flops(&[n, c_out, ho, wo, cin_g, kh, kw]),
    });
    Ok(out)
}
