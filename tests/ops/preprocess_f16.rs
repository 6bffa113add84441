//! preprocess with an f16 canvas (preprocess_f16.wgsl): the case table of `preprocess.rs` and its batch of two
//! images again, against the f32 reference rounded to f16 (`round_f16`).
//!
//! The shader computes each value in f32 exactly as the f32 variant and rounds it to f16 on the store, as
//! `round_f16` does to the reference. Copy cases (atol 0) compute the reference's f32 value exactly, so the
//! same rounding gives the same f16: exact (atol 0, rtol 0). Resize cases differ by up to their f32 atol
//! before rounding; the two roundings may then land on adjacent f16 values, one f16 ulp apart, ≤ 2^-10 of the
//! value (≈ 0.125 around 200 in the 0..255 domain): the case's atol plus rtol 2^-10.
//! Pad values (−1, 7) are exact in f16.

use super::f16_maps::HALF_ULP;
use super::preprocess::{batch_of_two, cases, noise, run};
use crate::common::*;
use sshface::gpu::DType;
use sshface::reference::preprocess as reference;

/// One f16 ulp relative to the value: two independent roundings of values within atol.
const ONE_ULP: f32 = 2.0 * HALF_ULP;

/// The tolerance (atol, rtol) against the rounded reference for a case of f32 tolerance `atol`.
fn tolerance(atol: f32) -> (f32, f32) {
    if atol == 0.0 {
        (0.0, 0.0)
    } else {
        (atol, ONE_ULP)
    }
}

#[test]
fn preprocess_f16_cases() {
    let Some(ctx) = gpu() else { return };
    if !has_f16(ctx) {
        return;
    }
    for (i, (name, hw, p, canvas, atol)) in cases().iter().enumerate() {
        // The same images as the f32 table.
        let rgb = noise(i as u64, *hw);
        let got = run(ctx, &[(&rgb, p)], *canvas, DType::F16);
        let want = round_f16(&reference::preprocess(&rgb, p, *canvas).data);
        let (atol, rtol) = tolerance(*atol);
        assert_close(&format!("{name} [f16]"), &got, &want, atol, rtol);
    }
}

#[test]
fn preprocess_f16_batch_of_two_sizes() {
    let Some(ctx) = gpu() else { return };
    if !has_f16(ctx) {
        return;
    }
    for (i, (got, want)) in batch_of_two(ctx, DType::F16).iter().enumerate() {
        // 1e-4: as the f32 batch test; then rounding as the resize cases.
        let (atol, rtol) = tolerance(1e-4);
        let case = format!("batch image {i} [f16]");
        assert_close(&case, got, &round_f16(want), atol, rtol);
    }
}
