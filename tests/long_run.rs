//! Long runs keep memory flat: `sshface detect` over 10,000 generated images of mixed small sizes (32–96 px), with
//! resident memory and live GPU memory sampled by `--stats` at the start, middle and end of the run.
//!
//! Ignored by default (minutes to an hour on lavapipe); run it with
//! `.ci/test --test long_run -- --ignored --nocapture` (`SSHFACE_LONG_RUN_IMAGES=N` for another count). It prints
//! the samples and fails when memory grows from the middle of the run to its end by more than the bounds below.

mod common;

use std::path::Path;
use std::process::Command;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Growth from the middle sample to the end allowed for each figure: room for the plan cache holding plans of other
/// sizes at the two moments (a plan for 8 images of at most 96×96 px is a few MiB), far below what a per-image or
/// per-plan leak would add over thousands of images.
const MAX_GROWTH: u64 = 48 << 20;

/// One `--stats` line: images done, then (name, value) of every other figure.
#[derive(Debug)]
struct Sample {
    images: u64,
    rss: u64,
    gpu_allocated: u64,
    gpu_reserved: u64,
    plans: u64,
}

fn parse(line: &str) -> Option<Sample> {
    let rest = line.strip_prefix("sshface: stats: ")?;
    let get = |k: &str| -> Option<u64> {
        rest.split(' ')
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some(Sample {
        images: get("images")?,
        rss: get("rss_bytes")?,
        gpu_allocated: get("gpu_allocated_bytes")?,
        gpu_reserved: get("gpu_reserved_bytes")?,
        plans: get("plans_compiled")?,
    })
}

/// `n` PNGs of seeded sizes 32–96 px per side with smooth seeded content (small files), in 10 folders.
fn generate(dir: &Path, n: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for i in 0..n {
        let (w, h) = (rng.random_range(32..=96u32), rng.random_range(32..=96u32));
        let (a, b, c) = (rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>());
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                a.wrapping_add((x * 3) as u8),
                b.wrapping_add((y * 2) as u8),
                c.wrapping_add(((x + y) / 2) as u8),
            ])
        });
        let sub = dir.join(format!("{:02}", i % 10));
        std::fs::create_dir_all(&sub).unwrap();
        img.save(sub.join(format!("{i:05}.png"))).unwrap();
    }
}

#[test]
#[ignore = "long: 10,000 images through the CLI; run with --ignored"]
fn ten_thousand_images_keep_memory_flat() {
    let Some(_) = common::gpu() else { return };
    let n: usize = std::env::var("SSHFACE_LONG_RUN_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = common::scratch("long-run");
    let images = dir.join("images");
    generate(&images, n);
    let out = dir.join("out");
    let started = std::time::Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_sshface"))
        .args(["detect", "--out"])
        .arg(&out)
        .args(["--unit-size", "1000", "--stats"])
        .arg((n / 10).max(1).to_string())
        .arg(&images)
        .output()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "sshface detect failed: {stderr}");
    let samples: Vec<Sample> = stderr.lines().filter_map(parse).collect();
    let rows: usize = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(rows, n, "one row per image");
    let summary = stderr
        .lines()
        .find(|l| l.contains(" images, "))
        .unwrap_or("");
    println!("{n} images in {secs:.0} s: {summary}");
    for s in &samples {
        println!(
            "images {:>6}: RSS {:>7.1} MiB, GPU allocated {:>7.1} MiB, reserved {:>7.1} MiB, {} plans compiled",
            s.images,
            s.rss as f64 / 1048576.0,
            s.gpu_allocated as f64 / 1048576.0,
            s.gpu_reserved as f64 / 1048576.0,
            s.plans
        );
    }
    let (first, last) = (samples.first().unwrap(), samples.last().unwrap());
    let mid = samples
        .iter()
        .min_by_key(|s| s.images.abs_diff(n as u64 / 2))
        .unwrap();
    println!(
        "start / middle / end: images {} / {} / {}",
        first.images, mid.images, last.images
    );
    assert_eq!(last.images, n as u64);
    for (what, m, e) in [
        ("RSS", mid.rss, last.rss),
        ("GPU allocated", mid.gpu_allocated, last.gpu_allocated),
        ("GPU reserved", mid.gpu_reserved, last.gpu_reserved),
    ] {
        assert!(
            e <= m + MAX_GROWTH,
            "{what} grew from {m} bytes at image {} to {e} at the end",
            mid.images
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
