//! The cooperative-matrix tier of [`conv2d`](crate::ops::conv2d): implicit GEMM on tensor cores with f16
//! operands and f32 accumulators (`shaders/conv2d_coop8.wgsl`, `shaders/conv2d_coop16.wgsl`: one kernel
//! in the two matrix sizes adapters offer). Shapes, `Params` and the fused epilogue are those of `conv2d`,
//! which decides when this tier runs; the weights come packed k-major ([`packed_layout`]), once per weight.

use crate::error::{Error, Result};
use crate::gpu::DType;
use crate::ops::conv2d::Params;
use crate::ops::{variant, Shader};

pub static SHADER8: Shader = crate::shader!("conv2d_coop8", Params);
pub static SHADER16: Shader = crate::shader!("conv2d_coop16", Params);
pub static SHADER8_F16: Shader = crate::shader_f16!("conv2d_coop8", Params);
pub static SHADER16_F16: Shader = crate::shader_f16!("conv2d_coop16", Params);

/// A workgroup's output tile is `TILE_MATRICES·S` channels × `TILE_MATRICES·S` pixels (4 subgroups of
/// 2 × 2 accumulators each).
pub const TILE_MATRICES: usize = 4;

/// The shader and entry point for matrices of `size`×`size` and feature maps of `dtype`.
pub fn shader(size: u32, dtype: DType) -> Result<(&'static Shader, &'static str)> {
    match size {
        8 => Ok((variant(dtype, &SHADER8, &SHADER8_F16), "conv2d_coop8")),
        16 => Ok((variant(dtype, &SHADER16, &SHADER16_F16), "conv2d_coop16")),
        _ => Err(Error::Config(format!(
            "no cooperative-matrix convolution for {size}x{size} matrices (have 8x8 and 16x16)"
        ))),
    }
}

/// The packed weights of this tier for `size`×`size` matrices: channels padded to whole tiles (`4·size`),
/// depths to whole slices (`2·size`), so the shader stages them without bounds checks.
pub fn packed_layout(
    groups: usize,
    cout_g: usize,
    k: usize,
    size: u32,
) -> crate::ops::pack_kmajor::Layout {
    let s = size as usize;
    crate::ops::pack_kmajor::Layout {
        groups,
        rows: cout_g,
        k,
        kp: k.next_multiple_of(2 * s),
        mp: cout_g.next_multiple_of(TILE_MATRICES * s),
    }
}

/// Whether `Auto` sends a conv of this GEMM shape to the cooperative-matrix tier: not depthwise, and
/// enough output channels per group and depth that the 4S-wide tiles are not mostly padding
/// (detection heads with 4–20 channels stay on the fp32 kernels, where they cost little).
pub fn pays(cin_g: usize, cout_g: usize, k: usize) -> bool {
    cin_g > 1 && cout_g >= 16 && k >= 16
}
