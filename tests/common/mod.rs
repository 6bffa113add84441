//! Shared test support: the GPU context (or a printed skip), seeded data and close-comparison with a report.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sshface::gpu::plan::bytes_to_u32;
use sshface::gpu::{Graph, TensorId};
use sshface::{AdapterOptions, Face, GpuContext};

/// The context, or `None` with a printed reason when its adapter is missing, unless `SSHFACE_REQUIRE_GPU=1`
/// (set by `.ci/run`), where a missing adapter fails the test instead.
fn required<T>(what: &str, r: &'static Result<T, String>) -> Option<&'static T> {
    match r {
        Ok(c) => Some(c),
        Err(e) => {
            if std::env::var("SSHFACE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("SSHFACE_REQUIRE_GPU=1 but no {what}: {e}");
            }
            eprintln!("SKIP (no {what}): {e}");
            None
        }
    }
}

/// The shared GPU context (see [`required`]).
pub fn gpu() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    let r =
        CTX.get_or_init(|| GpuContext::new(&AdapterOptions::default()).map_err(|e| e.to_string()));
    required("GPU adapter", r)
}

/// A context on the default adapter whose shaders are compiled without wgpu's runtime checks
/// ([`sshface::ShaderChecks::Off`]); see [`required`].
pub fn gpu_unchecked() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    let r = CTX.get_or_init(|| {
        GpuContext::with_shader_checks(&AdapterOptions::default(), sshface::ShaderChecks::Off)
            .map_err(|e| e.to_string())
    });
    required("GPU adapter", r)
}

/// A context on wgpu's GL backend, the second backend the network tests run on (llvmpipe through EGL in CI);
/// see [`required`].
pub fn gl() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    let r = CTX.get_or_init(|| {
        let opts = AdapterOptions {
            backends: Some(wgpu::Backends::GL),
            ..AdapterOptions::default()
        };
        let ctx = GpuContext::new(&opts).map_err(|e| e.to_string())?;
        println!("GL adapter: {}", ctx.describe());
        Ok(Arc::new(ctx))
    });
    let ctx = required("GL adapter", r)?;
    assert_eq!(ctx.info.backend, wgpu::Backend::Gl, "{}", ctx.describe());
    Some(ctx.clone())
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

/// As [`run_graph_bytes`], reading outputs as f32 values (f16 tensors are widened).
pub fn run_graph(
    ctx: &GpuContext,
    g: Graph,
    inputs: &[(TensorId, &[f32])],
    outputs: &[TensorId],
) -> Vec<Vec<f32>> {
    let plan = g.compile(ctx).expect("compile");
    for (id, data) in inputs {
        plan.write(ctx, *id, data).expect("write");
    }
    plan.run_f32(ctx, outputs).expect("run")
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

/// Cooperative-matrix sizes of the test adapter (empty without). With `SSHFACE_REQUIRE_COOP=1` (set by
/// `.ci/run`, whose lavapipe has them) an adapter without cooperative matrices fails the test instead.
pub fn coop_sizes(ctx: &GpuContext) -> Vec<u32> {
    if ctx.coop_sizes.is_empty() {
        if std::env::var("SSHFACE_REQUIRE_COOP").is_ok_and(|v| v == "1") {
            panic!(
                "SSHFACE_REQUIRE_COOP=1 but adapter {} has no f16 cooperative matrices",
                ctx.describe()
            );
        }
        eprintln!("SKIP (no f16 cooperative matrices on {})", ctx.describe());
    }
    ctx.coop_sizes.clone()
}

/// `v` rounded to the nearest f16 (ties to even), as the f16 kernels store it.
pub fn round_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

/// Whether the test adapter stores f16 (`SHADER_F16`); prints a skip otherwise, and fails instead
/// under `SSHFACE_REQUIRE_COOP=1` (CI's lavapipe has it).
pub fn has_f16(ctx: &GpuContext) -> bool {
    let ok = ctx.features.contains(wgpu::Features::SHADER_F16);
    if !ok {
        if std::env::var("SSHFACE_REQUIRE_COOP").is_ok_and(|v| v == "1") {
            panic!(
                "SSHFACE_REQUIRE_COOP=1 but adapter {} lacks shader-f16",
                ctx.describe()
            );
        }
        eprintln!("SKIP (no shader-f16 on {})", ctx.describe());
    }
    ok
}
