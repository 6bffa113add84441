//! `sshface bench`: end-to-end throughput (upload, preprocessing, network, decode, NMS, readback) per batch
//! size and precision, side by side on one device; a table, or JSON Lines with `--json`. `--train` times training
//! instead (`bench_train`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use sshface::{Detector, Precision, ShaderChecks};

use super::synthetic::NetArgs;
use super::train_recipe::{FreezeArg, SamplingArg};

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub(super) net: NetArgs,
    /// Use this image (resized to --size) instead of noise.
    #[arg(long)]
    pub(super) image: Option<PathBuf>,
    /// Batch sizes to compare side by side, e.g. 1,4,8.
    #[arg(long, default_value = "1,8", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    batch: Vec<u64>,
    /// Precisions to compare side by side, e.g. f32,f16-coop (one detector each, on one device).
    #[arg(long, default_value = "auto", value_delimiter = ',', value_parser = super::precision::parser())]
    precision: Vec<Precision>,
    /// Shader runtime checks to compare side by side, e.g. on,off: each on a device of its own, every precision on
    /// each (see README, "Shader runtime checks").
    #[arg(long, default_value = "on", value_delimiter = ',', value_parser = super::precision::checks_parser())]
    shader_checks: Vec<ShaderChecks>,
    /// Timed iterations per batch size and precision (with --train: training iterations).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) iters: u64,
    /// Print one JSON object per (precision, batch) line on stdout instead of the table.
    #[arg(long)]
    pub(super) json: bool,
    /// Time training of ssh-vgg16 instead of detection: an iteration is --iter-size forward and backward passes
    /// on the image at scale 1 with a few seeded random faces, then one SGD update.
    #[arg(long, conflicts_with_all = ["batch", "precision", "scale", "shader_checks"])]
    pub(super) train: bool,
    /// --train: images whose gradients are accumulated per update.
    #[arg(long, default_value_t = 2, requires = "train", value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) iter_size: u64,
    /// --train: layers left unchanged (default: as `train`, caffe).
    #[arg(long, value_enum, requires = "train")]
    pub(super) freeze: Option<FreezeArg>,
    /// --train: anchor sampling per module and image (default: as `train`, ohem).
    #[arg(long, value_enum, requires = "train")]
    pub(super) sampling: Option<SamplingArg>,
}

/// What every `--json` line starts with: the build and the adapter it ran on. Field order is the schema's.
#[derive(Serialize)]
pub(super) struct Origin {
    sshface: &'static str,
    build: String,
    adapter: String,
    backend: String,
    device_type: String,
    driver: String,
}

impl Origin {
    pub(super) fn new(info: &wgpu::AdapterInfo) -> Self {
        Origin {
            sshface: env!("CARGO_PKG_VERSION"),
            build: build_info(),
            adapter: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        }
    }
}

/// One line of `--json` (JSON Lines). Field order is the documented schema's.
#[derive(Serialize)]
struct Record {
    #[serde(flatten)]
    origin: Origin,
    /// The precision that ran (what `auto` resolved to), e.g. `f16-coop`.
    precision: &'static str,
    /// e.g. `f16-coop (16x16)` or `f32 (wide GEMM)`.
    conv_path: String,
    requested_precision: &'static str,
    /// The GEMM tier of the f32-arithmetic convolutions that ran: `wide` or `small` (also under f16-coop,
    /// whose convolutions with few channels stay on it).
    gemm: &'static str,
    /// `on`, or `off`: shaders compiled without wgpu's runtime checks.
    shader_checks: &'static str,
    model: &'static str,
    weights: String,
    width: u32,
    height: u32,
    scale: Option<f64>,
    batch: usize,
    iters: usize,
    ms_per_batch_median: f64,
    ms_per_batch_min: f64,
    ms_per_image: f64,
    images_per_s: f64,
    gpu_memory_bytes: u64,
    faces_per_image: f64,
}

/// `(median, min)` of the per-iteration times in ms, after one untimed run that builds the plan and one warm-up.
fn time_batch(
    det: &Detector,
    imgs: &[image::RgbImage],
    iters: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    det.detect_batch(imgs)?;
    det.detect_batch(imgs)?;
    let mut ms = Vec::with_capacity(iters);
    let mut faces = 0;
    for _ in 0..iters {
        let t = Instant::now();
        faces = det.detect_batch(imgs)?.iter().map(Vec::len).sum();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (median, min) = median_min(ms);
    Ok((median, min, faces))
}

/// `(median, min)` of `ms` (not empty).
pub(super) fn median_min(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let mid = ms.len() / 2;
    let median = if ms.len() % 2 == 1 {
        ms[mid]
    } else {
        (ms[mid - 1] + ms[mid]) / 2.0
    };
    (median, ms[0])
}

pub fn bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    if a.train {
        return super::bench_train::bench_train(&a);
    }
    // Every precision on each choice of checks, each choice on a device of its own (a context compiles one kind);
    // ordered precision-major so that the runs compared by an off/on ratio follow each other.
    let mut per_checks = Vec::new();
    for &c in &a.shader_checks {
        per_checks.push(a.net.detectors(&a.precision, c)?.into_iter());
    }
    let mut dets = Vec::new();
    for &p in &a.precision {
        for ds in &mut per_checks {
            dets.extend(ds.next().map(|d| (d, p)));
        }
    }
    let img = a.net.image(a.image.as_ref())?;
    let iters = a.iters as usize;
    let info = &dets[0].0.context().info;
    for (d, p) in &dets {
        eprintln!(
            "sshface: model {} size {} ({} requested) on {}",
            d.model().name(),
            a.net.size,
            p,
            d.describe()
        );
    }
    if !a.json {
        println!(
            "{:<18} {:>6} {:>12} {:>10} {:>10} {:>10} {:>9}",
            "precision", "batch", "ms/batch", "min ms", "ms/image", "images/s", "GPU MiB"
        );
    }
    for &n in &a.batch {
        let imgs = vec![img.clone(); n as usize];
        let mut first = None;
        for (det, requested) in &dets {
            let (median, min, faces) = time_batch(det, &imgs, iters)?;
            let per = median / imgs.len() as f64;
            let mem = det.gpu_memory_bytes(&imgs)?;
            let label = match det.shader_checks() {
                ShaderChecks::On => det.numerics().describe(),
                ShaderChecks::Off => format!("{} checks off", det.numerics().describe()),
            };
            if a.json {
                let r = Record {
                    origin: Origin::new(info),
                    precision: det.precision().name(),
                    conv_path: det.numerics().describe(),
                    requested_precision: requested.name(),
                    gemm: det.numerics().gemm().name(),
                    shader_checks: det.shader_checks().name(),
                    model: det.model().name(),
                    weights: a.net.weights_label(),
                    width: img.width(),
                    height: img.height(),
                    scale: a.net.scale(),
                    batch: imgs.len(),
                    iters,
                    ms_per_batch_median: median,
                    ms_per_batch_min: min,
                    ms_per_image: per,
                    images_per_s: 1e3 / per,
                    gpu_memory_bytes: mem,
                    faces_per_image: faces as f64 / imgs.len() as f64,
                };
                println!("{}", serde_json::to_string(&r)?);
                continue;
            }
            // Several detectors: each against the first at the same batch size.
            let ratio = match &first {
                Some((f, l)) => format!("  ({:.2}x the time of {l})", median / f),
                None => String::new(),
            };
            if dets.len() > 1 {
                first.get_or_insert((median, label.clone()));
            }
            println!(
                "{:<18} {:>6} {:>12.2} {:>10.2} {:>10.2} {:>10.1} {:>9.1}{ratio}",
                label,
                imgs.len(),
                median,
                min,
                per,
                1e3 / per,
                mem as f64 / (1 << 20) as f64
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What identifies the build beside the version, without git: profile and target, e.g. `release x86_64-linux`.
fn build_info() -> String {
    format!(
        "{} {}-{}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}
