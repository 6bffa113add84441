//! `sshface bench` (end-to-end throughput) and `sshface profile` (GPU time per layer).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use image::RgbImage;
use sshface::Detector;

use super::{GpuArgs, ModelArg};

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "retinaface-mnv2")]
    model: ModelArg,
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Image size WxH (synthetic noise image, or --image resized to it).
    #[arg(long, default_value = "640x640")]
    size: String,
    /// Use this image (resized to --size) instead of noise.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Batch sizes to compare side by side, e.g. 1,4,8.
    #[arg(long, default_value = "1,8", value_delimiter = ',')]
    batch: Vec<usize>,
    /// ssh-vgg16: resize factor instead of the 1200/1600 single-scale rule.
    #[arg(long)]
    scale: Option<f64>,
    /// Timed iterations per batch size.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    #[command(flatten)]
    gpu: GpuArgs,
}

#[derive(Args)]
pub struct ProfileArgs {
    #[arg(long, value_enum, default_value = "retinaface-mnv2")]
    model: ModelArg,
    #[arg(long)]
    weights: Option<PathBuf>,
    #[arg(long, default_value = "640x640")]
    size: String,
    /// ssh-vgg16: resize factor instead of the 1200/1600 single-scale rule.
    #[arg(long)]
    scale: Option<f64>,
    /// Print every step, not only the per-shader totals.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    gpu: GpuArgs,
}

fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| anyhow::anyhow!("--size '{s}': expected WxH, e.g. 640x640"))?;
    Ok((w.parse()?, h.parse()?))
}

fn test_image(size: &str, path: Option<&PathBuf>) -> anyhow::Result<RgbImage> {
    let (w, h) = parse_size(size)?;
    if let Some(p) = path {
        let img = sshface::image_io::load_rgb(p)?;
        return Ok(image::imageops::resize(
            &img,
            w,
            h,
            image::imageops::FilterType::Triangle,
        ));
    }
    // Deterministic noise: exercises every layer at full cost without bundling a large image.
    let mut s = 0x9E37_79B9u32;
    Ok(RgbImage::from_fn(w, h, |_, _| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        image::Rgb([s as u8, (s >> 8) as u8, (s >> 16) as u8])
    }))
}

fn detector(
    model: ModelArg,
    weights: &Option<PathBuf>,
    scale: Option<f64>,
    gpu: &GpuArgs,
) -> anyhow::Result<Detector> {
    let mut b = Detector::builder()
        .model(model.into())
        .adapter(gpu.options()?);
    if let Some(w) = weights {
        b = b.weights(w);
    }
    if let Some(s) = scale {
        b = b.protocol(sshface::Protocol::Scale(s));
    }
    Ok(b.build()?)
}

pub fn bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let det = detector(a.model, &a.weights, a.scale, &a.gpu)?;
    let img = test_image(&a.size, a.image.as_ref())?;
    println!(
        "model {} size {} on {}",
        det.model().name(),
        a.size,
        det.describe()
    );
    println!(
        "{:>6} {:>12} {:>12} {:>10}",
        "batch", "ms/batch", "ms/image", "images/s"
    );
    let mut base = None;
    for &n in &a.batch {
        let imgs = vec![img.clone(); n.max(1)];
        det.detect_batch(&imgs)?; // plan + pipelines
        det.detect_batch(&imgs)?; // warm
        let t = Instant::now();
        for _ in 0..a.iters.max(1) {
            det.detect_batch(&imgs)?;
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / a.iters.max(1) as f64;
        let per = ms / imgs.len() as f64;
        let ratio = base
            .map(|b: f64| format!("  ({:.2}x images/s vs batch {})", b / per, a.batch[0]))
            .unwrap_or_default();
        base.get_or_insert(per);
        println!(
            "{:>6} {:>12.2} {:>12.2} {:>10.1}{ratio}",
            imgs.len(),
            ms,
            per,
            1e3 / per
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn profile(a: ProfileArgs) -> anyhow::Result<ExitCode> {
    let det = detector(a.model, &a.weights, a.scale, &a.gpu)?;
    let img = test_image(&a.size, None)?;
    det.detect(&img)?;
    let t = det.profile(&img)?;
    let total: f64 = t.iter().map(|s| s.nanos).sum();
    println!(
        "model {} size {} on {}: {} steps, {:.3} ms GPU",
        det.model().name(),
        a.size,
        det.describe(),
        t.len(),
        total / 1e6
    );
    if a.all {
        for s in &t {
            println!("{:>10.3} ms  {:<14} {}", s.nanos / 1e6, s.shader, s.label);
        }
    }
    let mut by: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for s in &t {
        let e = by.entry(&s.shader).or_default();
        e.0 += s.nanos;
        e.1 += 1;
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    println!(
        "{:<16} {:>6} {:>10} {:>7}",
        "shader", "steps", "ms", "share"
    );
    for (name, (ns, n)) in v {
        println!(
            "{name:<16} {n:>6} {:>10.3} {:>6.1}%",
            ns / 1e6,
            100.0 * ns / total.max(1.0)
        );
    }
    Ok(ExitCode::SUCCESS)
}
