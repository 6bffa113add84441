//! Shared test support: the GPU context (or a printed skip), seeded data and close-comparison with a report.
#![allow(dead_code)]

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sshface::gpu::plan::{bytes_to_f32, bytes_to_u32};
use sshface::gpu::{Graph, TensorId};
use sshface::{AdapterOptions, Face, GpuContext};

/// The shared GPU context. `None` (with a printed reason) when no adapter exists, unless
/// `SSHFACE_REQUIRE_GPU=1` (set by `.ci/run`), where a missing adapter fails the test instead.
pub fn gpu() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    let r =
        CTX.get_or_init(|| GpuContext::new(&AdapterOptions::default()).map_err(|e| e.to_string()));
    match r {
        Ok(c) => Some(c),
        Err(e) => {
            if std::env::var("SSHFACE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("SSHFACE_REQUIRE_GPU=1 but no GPU adapter: {e}");
            }
            eprintln!("SKIP (no GPU adapter): {e}");
            None
        }
    }
}

/// A fresh, empty per-process scratch folder for one test (under the system temp dir, which the CI runner shares).
pub fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sshface-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Uniform values in [lo, hi) from a fixed seed.
pub fn rand_vec(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Panics with the case name, the first bad index, got, want and the max difference when
/// |got − want| > atol + rtol·|want| anywhere (NaN never passes).
pub fn assert_close(case: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{case}: length {} vs expected {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0.0f32);
    let mut first_bad = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        let ok = d <= atol + rtol * w.abs();
        if !ok && first_bad.is_none() {
            first_bad = Some(i);
        }
        if d > worst.1 || d.is_nan() {
            worst = (i, if d.is_nan() { f32::INFINITY } else { d });
        }
    }
    if let Some(i) = first_bad {
        panic!(
            "{case}: mismatch at index {i}: got {} want {}; max |diff| {} at index {} (got {} want {}); tolerance atol {atol} rtol {rtol}",
            got[i], want[i], worst.1, worst.0, got[worst.0], want[worst.0]
        );
    }
}

/// Compiles `g`, writes `inputs`, runs once and returns the bytes of `outputs`.
pub fn run_graph_bytes(
    ctx: &GpuContext,
    g: Graph,
    inputs: &[(TensorId, &[f32])],
    outputs: &[TensorId],
) -> Vec<Vec<u8>> {
    let plan = g.compile(ctx).expect("compile");
    for (id, data) in inputs {
        plan.write(ctx, *id, data).expect("write");
    }
    plan.run(ctx, outputs).expect("run")
}

/// As [`run_graph_bytes`], reading outputs as f32.
pub fn run_graph(
    ctx: &GpuContext,
    g: Graph,
    inputs: &[(TensorId, &[f32])],
    outputs: &[TensorId],
) -> Vec<Vec<f32>> {
    run_graph_bytes(ctx, g, inputs, outputs)
        .iter()
        .map(|b| bytes_to_f32(b))
        .collect()
}

/// As [`run_graph_bytes`], reading outputs as u32.
pub fn run_graph_u32(
    ctx: &GpuContext,
    g: Graph,
    inputs: &[(TensorId, &[f32])],
    outputs: &[TensorId],
) -> Vec<Vec<u32>> {
    run_graph_bytes(ctx, g, inputs, outputs)
        .iter()
        .map(|b| bytes_to_u32(b))
        .collect()
}

/// Same count; every box and landmark coordinate within `px`, score within `score`.
pub fn assert_faces_match(case: &str, got: &[Face], want: &[Face], px: f32, score: f32) {
    assert_eq!(
        got.len(),
        want.len(),
        "{case}: {} faces, expected {}: {got:?}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        for k in 0..4 {
            assert!(
                (g.bbox[k] - w.bbox[k]).abs() <= px,
                "{case}: face {i} box[{k}] {} vs {}",
                g.bbox[k],
                w.bbox[k]
            );
        }
        assert!(
            (g.score - w.score).abs() <= score,
            "{case}: face {i} score {} vs {}",
            g.score,
            w.score
        );
        if let (Some(gl), Some(wl)) = (&g.landmarks, &w.landmarks) {
            for k in 0..5 {
                for c in 0..2 {
                    assert!(
                        (gl[k][c] - wl[k][c]).abs() <= px,
                        "{case}: face {i} landmark {k}[{c}] {} vs {}",
                        gl[k][c],
                        wl[k][c]
                    );
                }
            }
        } else {
            assert_eq!(
                g.landmarks.is_some(),
                w.landmarks.is_some(),
                "{case}: landmarks presence"
            );
        }
    }
}
