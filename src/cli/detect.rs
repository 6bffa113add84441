//! `sshface detect`: results on stdout, or one file per work unit under `--out` (resumable, shardable).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use sshface::{Detector, Protocol};

use super::output::{Format, UnitFile, Writer};
use super::precision::PrecisionArgs;
use super::units::{self, Unit};
use super::worker::{self, Stats, Stop};
use super::{progress, status, GpuArgs, ModelArg};

#[derive(Args)]
#[command(after_help = status::HELP)]
pub struct DetectArgs {
    /// Network to run.
    #[arg(long, value_enum, default_value = "retinaface-mnv2")]
    model: ModelArg,
    /// Weight file (default: the bundled retinaface-mnv2 weights).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Keep detections with score > F, in [0, 1] (default 0.5).
    #[arg(long, allow_negative_numbers = true, value_parser = super::unit_interval)]
    score: Option<f32>,
    /// NMS IoU threshold in [0, 1] (default 0.4 for retinaface-mnv2, 0.3 for ssh-vgg16).
    #[arg(long, allow_negative_numbers = true, value_parser = super::unit_interval)]
    nms: Option<f32>,
    /// Keep at most N faces per image, the best-scoring first.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_faces: Option<u64>,
    /// Report boxes as the network decodes them, possibly past the image edges (default: clipped to the image).
    #[arg(long)]
    raw_boxes: bool,
    /// Write the raw per-anchor outputs of the first image to this safetensors file.
    #[arg(long, conflicts_with = "bucket")]
    dump: Option<PathBuf>,
    /// Resize every image by S first (coordinates stay in original pixels): ssh-vgg16 instead of its single-scale
    /// 1200/1600 rule; retinaface-mnv2 instead of its own size (e.g. 2 for tiny faces, 0.5 for speed).
    #[arg(long, conflicts_with = "pyramid", allow_negative_numbers = true)]
    scale: Option<f64>,
    /// ssh-vgg16: the pyramid protocol (levels ×0.625, 1, 1.5, 2 of the 800/1200 base).
    #[arg(long)]
    pyramid: bool,
    /// Give the GPU up when one submit takes longer than this (default 600 on GPUs, 3600 on CPU adapters such as
    /// lavapipe): exit 3, complete units kept.
    #[arg(long, value_name = "SECONDS", value_parser = positive_secs)]
    gpu_timeout: Option<std::time::Duration>,
    /// Print a line on stderr with the images done, resident memory and live GPU memory after the first batch,
    /// every N images, and at the end.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    stats: Option<u64>,
    /// Images per GPU submit.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(flatten)]
    precision: PrecisionArgs,
    #[command(flatten)]
    visual: super::visual::VisualArgs,
    #[command(flatten)]
    video: Box<super::video::VideoArgs>,
    /// Also read image (or .tar) paths from this file, one per line (`-`: standard input).
    #[arg(long)]
    list: Option<PathBuf>,
    /// Write each unit's results to DIR/<unit>.<format> (wider: a folder DIR/<unit>/), complete units skipped.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Images per unit, in input order (a .tar is always one unit of its own).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    unit_size: u64,
    /// Redo units whose output is already complete.
    #[arg(long, requires = "out")]
    overwrite: bool,
    /// Take the units whose index is K mod N (default: from SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX).
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Shard count for JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's completions), or to override Slurm's.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    shards: Option<u64>,
    /// Output format (default: json on stdout, jsonl under --out).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Pad images to a ladder of canvas sizes so mixed sizes share batches and plans (default for folders, tars and
    /// lists on a GPU adapter; retinaface-mnv2, or ssh-vgg16 with --scale).
    #[arg(long, conflicts_with = "no_bucket")]
    bucket: bool,
    /// Run every image at its own size.
    #[arg(long)]
    no_bucket: bool,
    /// Downscale images whose longer side exceeds N first (coordinates stay in original pixels).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_side: Option<u32>,
    /// Refuse images with more pixels than N, read from the header before decoding.
    #[arg(long, value_name = "N", default_value_t = sshface::image_io::DEFAULT_MAX_PIXELS,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_pixels: u64,
    /// Image files (PNG, JPEG, BMP, WebP, TIFF, GIF: first frame; `-`: one image from standard input), .tar files
    /// of images, or folders searched recursively (symlinks followed, each real file once); or video files (mp4,
    /// mkv, mov, webm, avi, … recognised by content; decoded by ffmpeg).
    #[arg(required_unless_present = "list")]
    images: Vec<PathBuf>,
}

/// Where results go: one stream, or a file (folder for wider) per unit.
enum Dest {
    Stdout(Writer),
    Dir(PathBuf),
}

fn builder(a: &DetectArgs) -> anyhow::Result<sshface::DetectorBuilder> {
    let mut b = Detector::builder()
        .model(a.model.into())
        .adapter(a.gpu.options()?)
        .precision(a.precision.precision)
        .clip_boxes(!a.raw_boxes);
    if let Some(w) = &a.weights {
        b = b.weights(w);
    }
    if let Some(s) = a.score {
        b = b.score_threshold(s);
    }
    if let Some(n) = a.nms {
        b = b.nms_threshold(n);
    }
    if let Some(t) = a.gpu_timeout {
        b = b.gpu_timeout(t);
    }
    // Test-only fault injection (tests/faults.rs): lose-device, stall or oom, optionally @N.
    if let Some(f) = std::env::var("SSHFACE_FAULT")
        .ok()
        .filter(|f| !f.is_empty())
    {
        b = b.inject_fault(f.parse()?);
    }
    if let Some(s) = a.scale {
        b = b.protocol(Protocol::Scale(s));
    } else if a.pyramid {
        b = b.protocol(Protocol::Pyramid);
    }
    Ok(b)
}

/// Rejects `--bucket` where padding would change results beyond the documented bound: ssh-vgg16 picks its resize
/// factor from each image's own size, so it buckets only with a fixed --scale.
fn check_bucket(a: &DetectArgs) -> anyhow::Result<()> {
    if a.bucket && a.model == ModelArg::SshVgg16 && a.scale.is_none() {
        anyhow::bail!("--bucket with --model ssh-vgg16 needs --scale S: its default protocols resize each image by a factor taken from its own size, which padding would change");
    }
    Ok(())
}

/// Whether to bucket: the flags, else on for archive-like inputs on a GPU. On a CPU adapter (lavapipe) the padded
/// pixels cost more compute than shared batches and plans save (README: measured on 200 mixed sizes).
fn bucketing(a: &DetectArgs, archive_like: bool, cpu: bool) -> bool {
    let allowed = a.model == ModelArg::RetinafaceMnv2 || a.scale.is_some();
    a.bucket || (!a.no_bucket && archive_like && allowed && !cpu && a.dump.is_none())
}

/// Fails before any GPU work when `--dump`'s folder does not exist, rather than after detection.
fn check_dump(a: &DetectArgs) -> anyhow::Result<()> {
    if let Some(d) = &a.dump {
        let parent = d.parent().filter(|p| !p.as_os_str().is_empty());
        if parent.is_some_and(|p| !p.is_dir()) || d.is_dir() {
            anyhow::bail!(
                "{}: cannot write the --dump file here (expected a file in an existing folder)",
                d.display()
            );
        }
    }
    Ok(())
}

/// `detect VIDEO…`: the options that apply to video, and the image-archive flags given (refused there).
fn video_job(a: &DetectArgs, videos: Vec<PathBuf>) -> anyhow::Result<super::video::Job<'_>> {
    let given = [
        ("--list", a.list.is_some()),
        ("--out", a.out.is_some()),
        ("--shard", a.shard.is_some()),
        ("--shards", a.shards.is_some()),
        ("--dump", a.dump.is_some()),
        ("--bucket", a.bucket),
    ];
    Ok(super::video::Job {
        videos,
        builder: builder(a)?,
        batch: a.batch as usize,
        max_side: a.max_side,
        clip: !a.raw_boxes,
        max_faces: a.max_faces.map(|n| n as usize),
        format: a.format,
        landmarks: a.model == ModelArg::RetinafaceMnv2,
        visual: &a.visual,
        video: &a.video,
        image_only: given
            .into_iter()
            .filter_map(|(f, on)| on.then_some(f))
            .collect(),
    })
}

pub fn run(a: DetectArgs) -> anyhow::Result<ExitCode> {
    if let Some(videos) = super::video::inputs(&a.images)? {
        return super::video::run(video_job(&a, videos)?);
    }
    if let Some(flag) = a.video.given() {
        anyhow::bail!("{flag} applies to video input; the inputs are images");
    }
    let started = Instant::now();
    check_dump(&a)?;
    let inputs = units::collect(&a.images, a.list.as_deref(), a.unit_size as usize)?;
    if inputs.units.is_empty() {
        let exts = sshface::image_io::EXTENSIONS.join(", ");
        let args = a
            .images
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>();
        let what = match &a.list {
            Some(l) => format!("--list {}", l.display()),
            None => args.join(", "),
        };
        // An empty --list is a pipeline's empty partition: a warning and an empty result, exit 0, no GPU opened.
        // Folders without images are a usage error (exit 2): most likely a wrong path or extension.
        if a.list.is_none() {
            anyhow::bail!(
                "{what}: no images found (folders are searched for {exts} and .tar files)"
            );
        }
        eprintln!("sshface: warning: {what}: no images found; nothing to do");
        if a.out.is_none() {
            let format = a.format.unwrap_or(Format::Json);
            Writer::new(format, Box::new(std::io::stdout()), None)?.finish()?;
        }
        return Ok(status::exit(status::OK));
    }
    let shard = units::shard(a.shard.as_deref(), a.shards.map(|n| n as usize), |k| {
        std::env::var(k).ok()
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let format = a.format.unwrap_or(if a.out.is_some() {
        Format::Jsonl
    } else {
        Format::Json
    });
    check_bucket(&a)?;
    a.visual.check(a.model == ModelArg::RetinafaceMnv2)?;
    let b = builder(&a)?;
    let mine: Vec<&Unit> = inputs
        .units
        .iter()
        .filter(|u| shard.as_ref().is_none_or(|s| s.takes(u)))
        .collect();
    let mut skipped = 0;
    let todo: Vec<&Unit> = match &a.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("--out {}: {e}", dir.display()))?;
            let (done, todo): (Vec<&Unit>, Vec<&Unit>) = mine
                .into_iter()
                .partition(|u| !a.overwrite && format.unit_path(dir, &u.name).exists());
            skipped = done.len();
            todo
        }
        None => mine,
    };
    if let Some(s) = &shard {
        eprintln!(
            "sshface: shard {}/{} (from {}): {} of {} units, {skipped} already complete",
            s.k,
            s.n,
            s.from,
            todo.len() + skipped,
            inputs.units.len()
        );
    }
    let det = b.build()?;
    let cpu = det.context().info.device_type == wgpu::DeviceType::Cpu;
    let cfg = worker::Config {
        batch: a.batch as usize,
        max_side: a.max_side,
        max_pixels: Some(a.max_pixels),
        clip: !a.raw_boxes,
        max_faces: a.max_faces.map(|n| n as usize),
        bucket_pad: bucketing(&a, inputs.archive_like, cpu)
            .then(|| super::buckets::pad_pixel(a.model.into())),
        visual: a.visual.any().then(|| a.visual.clone()),
    };
    eprintln!(
        "sshface: model {} on {} [{}]{}",
        det.model().name(),
        det.describe(),
        det.context().chosen_by,
        if cfg.bucket_pad.is_some() {
            ", size buckets on"
        } else {
            ""
        }
    );
    status::catch_signals()?;

    let known: usize = todo
        .iter()
        .map(|u| match &u.source {
            units::Source::Files(f) => f.len(),
            units::Source::Tar(_) => 0,
        })
        .sum();
    let pb = progress(known);
    let mut stats = Stats {
        report_every: a.stats.map(|n| n as usize),
        ..Stats::default()
    };
    let mut dump = a.dump.clone();
    let mut written = 0;
    let mut dest = match &a.out {
        None => Dest::Stdout(Writer::new(format, Box::new(std::io::stdout()), None)?),
        Some(dir) => Dest::Dir(dir.clone()),
    };
    let mut stop = None;
    for unit in todo {
        if status::interrupted() {
            stop = Some(Stop::Interrupted);
            break;
        }
        let r = match &mut dest {
            Dest::Stdout(w) => worker::run_unit(&det, unit, &cfg, w, &mut stats, &pb, &mut dump),
            Dest::Dir(dir) => {
                let mut f = UnitFile::create(dir, &unit.name, format)?;
                match worker::run_unit(&det, unit, &cfg, f.writer(), &mut stats, &pb, &mut dump) {
                    Ok(()) => f.commit().map(|_| written += 1).map_err(Stop::Output),
                    Err(e) => {
                        f.abandon();
                        Err(e)
                    }
                }
            }
        };
        if let Err(e) = r {
            stop = Some(e);
            break;
        }
    }
    pb.finish_and_clear();
    if let Dest::Stdout(w) = dest {
        w.finish()?;
    }
    let secs = started.elapsed().as_secs_f64();
    let units = match &a.out {
        Some(dir) => format!(
            "; units: {written} written, {skipped} skipped (complete) in {}",
            dir.display()
        ),
        None => String::new(),
    };
    eprintln!(
        "sshface: {} images, {} faces, {} failed, {secs:.1} s, {:.2} images/s, {} plans compiled{units}",
        stats.images,
        stats.faces,
        stats.failed,
        stats.images as f64 / secs.max(1e-9),
        det.plans_compiled()
    );
    if stats.report_every.is_some() {
        eprintln!("{}", super::memstats::line(&det, &stats));
    }
    let code = match stop {
        Some(Stop::Interrupted) => {
            eprintln!("sshface: interrupted; the unit in progress was dropped, rerun the same command to finish");
            status::INTERRUPTED
        }
        Some(Stop::Device(e)) => {
            eprintln!(
                "sshface: error: GPU or device failure: {e}; the unit in progress was dropped"
            );
            status::DEVICE
        }
        Some(Stop::Output(e)) => {
            eprintln!("sshface: error: writing the results: {e}; the unit in progress was dropped");
            status::DEVICE
        }
        None if stats.failed > 0 => status::SOME_FAILED,
        None => status::OK,
    };
    Ok(status::exit(code))
}

/// `--gpu-timeout`: a positive number of seconds.
fn positive_secs(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(std::time::Duration::from_secs_f64(v)),
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}
