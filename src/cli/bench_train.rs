//! `sshface bench --train`: training throughput of ssh-vgg16, measured as detection's is: the same weights (seeded
//! random or `--weights`) and synthetic image of `--size`, here at scale 1 with a fixed set of seeded faces; median
//! and minimum of `--iters` iterations after a warm-up; a table, or one JSON line with `"mode": "train"`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::ValueEnum;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sshface::model::ssh_vgg16::MODULES;
use sshface::model::weights::WeightFile;
use sshface::train::trainer::Trainer;

use super::bench::{median_min, BenchArgs, Origin};
use super::train_recipe::RecipeArgs;
use super::ModelArg;

/// Untimed iterations first: the first step builds the step's plan (the trainer builds the update's), so after one
/// iteration every pipeline has run once.
const WARMUP: usize = 1;
/// Seed of the synthetic faces: every run trains on the same boxes, so that runs compare.
const FACES_SEED: u64 = 0x55_4846;
/// Faces per module whose anchors fit the image.
const FACES_PER_MODULE: usize = 2;
/// Side of the base anchor that the modules' anchor scales multiply (py-faster-rcnn's 16).
const BASE_ANCHOR: f32 = 16.0;

/// One line of `bench --train --json`: [`Origin`], then the configuration and its figures.
#[derive(Serialize)]
struct TrainRecord {
    #[serde(flatten)]
    origin: Origin,
    mode: &'static str,
    /// Training runs in f32.
    precision: &'static str,
    model: &'static str,
    weights: String,
    width: u32,
    height: u32,
    scale: f64,
    iter_size: u64,
    freeze: String,
    sampling: String,
    /// The GEMM tier of the forward convolutions: `wide` or `small`.
    gemm: &'static str,
    faces: usize,
    iters: usize,
    ms_per_iter_median: f64,
    ms_per_iter_min: f64,
    ms_per_image: f64,
    images_per_s: f64,
    gflop_per_image: f64,
    gflop_per_s: f64,
    gpu_memory_bytes: u64,
}

/// The name clap gives a value (what the user types), for reports.
fn value_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}

pub(super) fn bench_train(a: &BenchArgs) -> anyhow::Result<ExitCode> {
    if a.net.model() != ModelArg::SshVgg16 {
        bail!(
            "--train: only ssh-vgg16 has a training step (retinaface-mnv2 is detection only); use --model ssh-vgg16"
        );
    }
    let img = a.net.image(a.image.as_ref())?;
    let (w, h) = img.dimensions();
    let hw = [h as usize, w as usize];
    let faces = synthetic_faces(w, h);
    let mut recipe = RecipeArgs::default();
    recipe.freeze = a.freeze.unwrap_or(recipe.freeze);
    recipe.sampling = a.sampling.unwrap_or(recipe.sampling);
    recipe.gemm = a.net.gemm;
    let ctx = a.net.gpu_context()?;
    let mut t = a.net.with_weights(|path| match path {
        Some(p) => recipe.trainer(&ctx, &WeightFile::open(p)?),
        None => bail!(
            "--train needs --weights FILE or --random-weights SEED: ssh-vgg16 has no bundled weights"
        ),
    })?;
    let (freeze, sampling) = (value_name(recipe.freeze), value_name(recipe.sampling));
    eprintln!(
        "sshface: training ssh-vgg16 at {} (iter-size {}, freeze {freeze}, sampling {sampling}, {} faces) on {}",
        a.net.size,
        a.iter_size,
        faces.len(),
        ctx.describe()
    );
    let iteration = |t: &mut Trainer| -> anyhow::Result<u64> {
        let mut flops = 0;
        for _ in 0..a.iter_size {
            flops = t.accumulate(&ctx, img.as_raw(), hw, &faces, 1.0)?.flops;
        }
        // Learning rate 0: the update does the same arithmetic at any rate, and the random network stays as it is,
        // so every iteration does the same work and no loss diverges.
        t.update(&ctx, 0.0, a.iter_size as usize)?;
        Ok(flops)
    };
    for _ in 0..WARMUP {
        iteration(&mut t)?;
    }
    let iters = a.iters as usize;
    let mut ms = Vec::with_capacity(iters);
    let mut flops = 0;
    for _ in 0..iters {
        let t0 = Instant::now();
        flops = iteration(&mut t)?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (median, min) = median_min(ms);
    let per_image = median / a.iter_size as f64;
    let gflop = flops as f64 / 1e9;
    let r = TrainRecord {
        origin: Origin::new(&ctx.info),
        mode: "train",
        precision: "f32",
        model: "ssh-vgg16",
        weights: a.net.weights_label(),
        width: w,
        height: h,
        scale: 1.0,
        iter_size: a.iter_size,
        freeze,
        sampling,
        gemm: recipe.gemm.resolve(ctx.info.device_type).name(),
        faces: faces.len(),
        iters,
        ms_per_iter_median: median,
        ms_per_iter_min: min,
        ms_per_image: per_image,
        images_per_s: 1e3 / per_image,
        gflop_per_image: gflop,
        gflop_per_s: gflop / (per_image / 1e3),
        gpu_memory_bytes: t.gpu_memory_bytes(),
    };
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10} {:>9} {:>10} {:>10} {:>10} {:>9} {:>11} {:>9} {:>9}",
        "mode",
        "iter-size",
        "ms/iter",
        "min ms",
        "ms/image",
        "images/s",
        "GFLOP/image",
        "GFLOP/s",
        "GPU MiB"
    );
    println!(
        "{:<10} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>9.2} {:>11.1} {:>9.1} {:>9.1}",
        "train",
        r.iter_size,
        r.ms_per_iter_median,
        r.ms_per_iter_min,
        r.ms_per_image,
        r.images_per_s,
        r.gflop_per_image,
        r.gflop_per_s,
        r.gpu_memory_bytes as f64 / (1 << 20) as f64
    );
    Ok(ExitCode::SUCCESS)
}

/// The faces of every timed step: for each module whose smaller anchor fits the image's shorter side,
/// [`FACES_PER_MODULE`] boxes `[x1, y1, x2, y2]` whose side lies between the module's two anchor sizes (capped at
/// that side) with aspect 0.8–1.25, placed anywhere inside the image. Seeded, so every run trains on the same faces.
fn synthetic_faces(w: u32, h: u32) -> Vec<[f32; 4]> {
    let mut rng = ChaCha8Rng::seed_from_u64(FACES_SEED);
    let (wf, hf) = (w as f32 - 1.0, h as f32 - 1.0);
    let short = w.min(h) as f32;
    let mut out = Vec::new();
    for &(_, [lo, hi]) in &MODULES {
        let (lo, hi) = (lo * BASE_ANCHOR, (hi * BASE_ANCHOR).min(short));
        if lo > short {
            continue;
        }
        for _ in 0..FACES_PER_MODULE {
            let side = rng.random_range(lo..=hi);
            let aspect = rng.random_range(0.8f32..=1.25).sqrt();
            let (bw, bh) = ((side * aspect).min(wf), (side / aspect).min(hf));
            let x = rng.random_range(0.0..=wf - bw);
            let y = rng.random_range(0.0..=hf - bh);
            out.push([x, y, x + bw, y + bh]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_fit_the_image_and_cover_the_modules_that_fit() {
        // 48x40: only M1's anchors (16, 32) fit; 1600x1200: all three modules.
        for (w, h, n) in [(48, 40, 2), (1600, 1200, 6), (8, 8, 0)] {
            let f = synthetic_faces(w, h);
            assert_eq!(f.len(), n, "{w}x{h}: {f:?}");
            for b in &f {
                assert!(
                    b[0] >= 0.0 && b[1] >= 0.0 && b[2] <= (w - 1) as f32 && b[3] <= (h - 1) as f32
                );
                assert!(b[2] > b[0] && b[3] > b[1], "{b:?}");
            }
        }
        let big = synthetic_faces(1600, 1200);
        let side = |b: &[f32; 4]| ((b[2] - b[0]) * (b[3] - b[1])).sqrt();
        assert!(side(&big[0]) < 40.0 && side(&big[5]) > 200.0, "{big:?}");
        assert_eq!(big, synthetic_faces(1600, 1200), "seeded");
    }
}
