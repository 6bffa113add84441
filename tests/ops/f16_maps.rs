//! Shared by the f16 case tables of the feature-map ops: what a map of each element type holds.

use crate::common::{gpu, has_f16, round_f16};
use sshface::gpu::DType;
use sshface::GpuContext;

/// `v` as a map of `dtype` stores it (rounded to the nearest f16 for f16 maps), so that the f64
/// reference sees the values the shader reads.
pub fn stored(dtype: DType, v: Vec<f32>) -> Vec<f32> {
    match dtype {
        DType::F32 => v,
        DType::F16 => round_f16(&v),
    }
}

/// Relative error of storing an f32 result as f16 rounded to nearest: half an ulp, 2^-11 ≈ 4.9e-4 of the
/// value (normal range; below it the absolute 2^-25 is far under every op's atol). WGSL lets a conversion
/// pick either neighbour; Vulkan drivers (lavapipe included) round to nearest, and this bound holds them to it.
pub const HALF_ULP: f32 = 1.0 / 2048.0;

/// The extra relative tolerance a result stored as `dtype` needs over the f32 one.
pub fn store_rtol(dtype: DType) -> f32 {
    match dtype {
        DType::F32 => 0.0,
        DType::F16 => HALF_ULP,
    }
}

/// The map element types the test adapter stores: f32, and f16 where it has shader-f16 (see `has_f16`).
pub fn dtypes(ctx: &GpuContext) -> Vec<DType> {
    let mut d = vec![DType::F32];
    if has_f16(ctx) {
        d.push(DType::F16);
    }
    d
}

/// Runs `check(dtype)` when there is a test adapter and it stores maps of `dtype` (f16: see `has_f16`).
pub fn check_at(dtype: DType, check: impl FnOnce(DType)) {
    if gpu().is_some_and(|ctx| dtype == DType::F32 || has_f16(ctx)) {
        check(dtype);
    }
}
