//! `sshface detect VIDEO`: videos (recognised by content) decoded by the system's `ffmpeg` on a second thread,
//! batches of equal-size frames on the GPU, one row per processed frame, and with `--blur OUT` / `--draw OUT` the
//! video re-encoded through `ffmpeg` with its audio copied.

mod decode;
mod encode;
mod one;
mod probe;
mod rows;
mod sniff;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::output::Format;
use super::visual::VisualArgs;
use super::worker::Stop;
use super::{say, status};

#[derive(Args, Clone, Default)]
pub struct VideoArgs {
    /// Video input: process every N-th frame (0, N, 2N, …); --blur/--draw outputs then hold those frames at the
    /// source rate divided by N.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub every: u64,
    /// Video input: start at this time (seconds, or [HH:]MM:SS[.frac]).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub start: Option<f64>,
    /// Video input: process at most this much of it (seconds, or [HH:]MM:SS[.frac]).
    #[arg(long, value_name = "T", value_parser = parse_duration)]
    pub duration: Option<f64>,
    /// Video input with --blur/--draw: leave the audio out (default: the source's audio streams copied unchanged).
    #[arg(long)]
    pub no_audio: bool,
    /// Video input with --blur/--draw: this FFmpeg encoder with FFmpeg's defaults (e.g. ffv1, lossless; default:
    /// libx264 CRF 18 for .mp4/.mkv/.mov, libvpx-vp9 for .webm, mpeg4 for .avi).
    #[arg(long, value_name = "NAME")]
    pub video_codec: Option<String>,
}

impl VideoArgs {
    /// The first video-only flag given, for the error when the inputs are images.
    pub fn given(&self) -> Option<&'static str> {
        [
            ("--every", self.every != 1),
            ("--start", self.start.is_some()),
            ("--duration", self.duration.is_some()),
            ("--no-audio", self.no_audio),
            ("--video-codec", self.video_codec.is_some()),
        ]
        .into_iter()
        .find_map(|(f, on)| on.then_some(f))
    }
}

/// Seconds ≥ 0, as `12.5`, `MM:SS` or `HH:MM:SS[.frac]`.
fn parse_time(s: &str) -> Result<f64, String> {
    let mut t = 0.0;
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() > 3 {
        return Err(format!("'{s}' is not a time (seconds, MM:SS or HH:MM:SS)"));
    }
    for (k, p) in parts.iter().enumerate() {
        let v: f64 = p
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .filter(|v| k + 1 == parts.len() || v.fract() == 0.0)
            .ok_or_else(|| format!("'{s}' is not a time ≥ 0 (seconds, MM:SS or HH:MM:SS)"))?;
        t = t * 60.0 + v;
    }
    Ok(t)
}

fn parse_duration(s: &str) -> Result<f64, String> {
    parse_time(s).and_then(|t| {
        if t > 0.0 {
            Ok(t)
        } else {
            Err(format!("'{s}': a duration must be > 0"))
        }
    })
}

/// The videos among `inputs`: `None` when there are none; an error when videos and images are mixed.
pub fn inputs(inputs: &[PathBuf]) -> anyhow::Result<Option<Vec<PathBuf>>> {
    let (videos, other): (Vec<&PathBuf>, Vec<&PathBuf>) =
        inputs.iter().partition(|p| sniff::is_video(p));
    match (videos.first(), other.first()) {
        (None, _) => Ok(None),
        (Some(_), None) => Ok(Some(videos.into_iter().cloned().collect())),
        (Some(v), Some(o)) => bail!(
            "{} is a video and {} is not: video and image inputs cannot be mixed in one command",
            v.display(),
            o.display()
        ),
    }
}

/// Everything `detect` passes to a video run.
pub struct Job<'a> {
    pub videos: Vec<PathBuf>,
    pub builder: sshface::DetectorBuilder,
    pub batch: usize,
    pub max_side: Option<u32>,
    pub clip: bool,
    pub max_faces: Option<usize>,
    pub format: Option<Format>,
    pub landmarks: bool,
    pub visual: &'a VisualArgs,
    pub video: &'a VideoArgs,
    /// Image-archive flags that were given (refused here).
    pub image_only: Vec<&'static str>,
}

#[derive(Default)]
pub struct Stats {
    pub videos: usize,
    pub frames: u64,
    pub faces: usize,
    pub failed: usize,
}

/// Refuses what cannot apply to video and prepares the output files' folders, before any decoding or GPU work.
fn check(job: &Job) -> anyhow::Result<()> {
    if let Some(f) = job.image_only.first() {
        bail!("{f} applies to images; it cannot be used with video input");
    }
    if job.format == Some(Format::Wider) {
        bail!("--format wider writes one file per image; use jsonl, json or csv with video input");
    }
    if job.visual.crops.is_some() {
        bail!("--crops writes image files; it cannot be used with video input (use --draw OUT.mp4 or --blur OUT.mp4)");
    }
    job.visual.check_values(job.landmarks)?;
    let outs: Vec<&PathBuf> = [&job.visual.blur, &job.visual.draw]
        .into_iter()
        .flatten()
        .collect();
    if !outs.is_empty() && job.videos.len() > 1 {
        bail!(
            "--blur/--draw name one output video; give one input video (got {})",
            job.videos.len()
        );
    }
    if outs.len() == 2 && outs[0] == outs[1] {
        bail!(
            "--blur and --draw both write {}: give two files",
            outs[0].display()
        );
    }
    for o in outs {
        if job.videos.iter().any(|v| same_file(v, o)) {
            bail!(
                "{}: the output video would overwrite its input",
                o.display()
            );
        }
        if let Some(parent) = o.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("output folder {}", parent.display()))?;
        }
        if o.is_dir() {
            bail!(
                "{}: --blur/--draw with video input name a file (e.g. out.mp4), not a folder",
                o.display()
            );
        }
    }
    // A missing ffmpeg is a usage error before the GPU opens (ffprobe's absence shows when probing).
    probe::command("ffmpeg")
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| probe::spawn_error("ffmpeg", e))?;
    if let Some(c) = &job.video.video_codec {
        let out = probe::command("ffmpeg")
            .arg("-h")
            .arg(format!("encoder={c}"))
            .output()
            .map_err(|e| probe::spawn_error("ffmpeg", e))?;
        if !String::from_utf8_lossy(&out.stdout).starts_with(&format!("Encoder {c} ")) {
            bail!("--video-codec {c}: this ffmpeg has no such encoder (`ffmpeg -encoders` lists them)");
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A progress bar counting frames (hidden when stderr is not a terminal).
fn progress(n: u64) -> ProgressBar {
    let pb = ProgressBar::new(n);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} frames  {msg}  {per_sec}  ETA {eta}")
    {
        pb.set_style(style);
    }
    pb.enable_steady_tick(std::time::Duration::from_millis(250));
    pb
}

pub fn run(mut job: Job) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    check(&job)?;
    let probes = job
        .videos
        .iter()
        .map(|v| probe::probe(v))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let det = std::mem::replace(&mut job.builder, sshface::Detector::builder()).build()?;
    eprintln!(
        "sshface: model {} on {} [{}]",
        det.model().name(),
        det.describe(),
        det.context().chosen_by
    );
    // FFmpeg's pipes: a write to an encoder that died must be an error we report, not a silent SIGPIPE death.
    #[cfg(unix)]
    // SAFETY: sets the disposition of one signal; no handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    status::catch_signals()?;
    let format = job.format.unwrap_or(Format::Jsonl);
    let mut rows = rows::Rows::new(format, Box::new(std::io::stdout()))?;
    let mut stats = Stats::default();
    let mut stop = None;
    for (path, probe) in job.videos.iter().zip(probes) {
        let pb = progress(0);
        let r = one::video(&det, &job, path, probe, &mut rows, &mut stats, &pb);
        pb.finish_and_clear();
        if let Err(e) = r {
            stop = Some(e);
            break;
        }
    }
    if let Err(e) = rows.finish() {
        stop.get_or_insert(Stop::Output(e));
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "sshface: {} video{}, {} frames, {} faces, {} failed, {secs:.1} s, {:.2} frames/s, {} plans compiled",
        stats.videos,
        if stats.videos == 1 { "" } else { "s" },
        stats.frames,
        stats.faces,
        stats.failed,
        stats.frames as f64 / secs.max(1e-9),
        det.plans_compiled()
    );
    let code = match stop {
        Some(Stop::Interrupted) => {
            eprintln!("sshface: interrupted; the rows and output video hold the frames processed before the signal");
            status::INTERRUPTED
        }
        Some(Stop::Device(e)) => {
            eprintln!("sshface: error: GPU or device failure: {e}");
            status::DEVICE
        }
        Some(Stop::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            // stdout closed (`| head`): end quietly through SIGPIPE, as the image path does.
            #[cfg(unix)]
            // SAFETY: restores the default disposition and raises it; no handler runs Rust code.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
            return Ok(status::exit(status::OK));
        }
        Some(Stop::Output(e)) => {
            eprintln!("sshface: error: writing the results: {e}");
            status::DEVICE
        }
        None if stats.failed > 0 => status::SOME_FAILED,
        None => status::OK,
    };
    Ok(status::exit(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("12.5"), Ok(12.5));
        assert_eq!(parse_time("01:02.5"), Ok(62.5));
        assert_eq!(parse_time("1:00:01"), Ok(3601.0));
        assert!(parse_time("-1").is_err());
        assert!(parse_time("1.5:00").is_err());
        assert!(parse_time("a").is_err());
        assert!(parse_time("1:2:3:4").is_err());
        assert!(parse_duration("0").is_err());
        assert_eq!(parse_duration("0.5"), Ok(0.5));
    }
}
