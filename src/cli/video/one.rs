//! One video: its decoder on a second thread, batches of equal-size frames on the GPU, rows in frame order, and
//! the frames of `--blur` / `--draw` to their encoders.

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::Instant;

use image::RgbImage;
use indicatif::ProgressBar;
use sshface::detector::Blur;
use sshface::Detector;

use super::super::buckets;
use super::super::worker::{guarded, Stop};
use super::decode::{Decoder, Frame, Spec};
use super::encode::{self, Encoder};
use super::probe::Probe;
use super::rows::Rows;
use super::{say, status, Job, Stats};

/// Why a video ended early: the whole run stops, or only this video failed (its error row follows its frames').
enum Halt {
    Run(Stop),
    Video(String),
}

impl From<Stop> for Halt {
    fn from(s: Stop) -> Self {
        Halt::Run(s)
    }
}

impl From<std::io::Error> for Halt {
    fn from(e: std::io::Error) -> Self {
        Halt::Run(Stop::Output(e))
    }
}

/// The `--blur` and `--draw` encoders, started at the first frame (when its size is known).
struct Outputs<'a> {
    specs: [Option<encode::Spec<'a>>; 2],
    encoders: [Option<Encoder>; 2],
}

impl Outputs<'_> {
    fn push(&mut self, k: usize, img: impl FnOnce() -> RgbImage) -> Result<(), Halt> {
        let Some(spec) = &self.specs[k] else {
            return Ok(());
        };
        let img = img();
        if self.encoders[k].is_none() {
            let e = Encoder::start(spec, img.width(), img.height())
                .map_err(|e| Halt::Video(format!("{e:#}")))?;
            self.encoders[k] = Some(e);
        }
        let e = self.encoders[k].as_mut().expect("started above");
        e.push(img)
            .map_err(|e| Halt::Run(Stop::Output(std::io::Error::other(e))))
    }

    /// Finishes both files; the first failure is the run's (an output that could not be written).
    fn finish(&mut self) -> Result<(), Stop> {
        let mut r = Ok(());
        for e in self.encoders.iter_mut().filter_map(Option::take) {
            if let Err(why) = e.finish() {
                r = r.and(Err(Stop::Output(std::io::Error::other(why))));
            }
        }
        r
    }
}

/// How many frames to expect, for the progress bar (0: unknown).
fn expected(p: &Probe, job: &Job) -> u64 {
    let fps = p.rate.map(|r| r.fps());
    let Some(total) = p.duration.or_else(|| Some(p.frames? as f64 / fps?)) else {
        return 0;
    };
    let start = job.video.start.unwrap_or(0.0);
    let span = (total - start)
        .max(0.0)
        .min(job.video.duration.unwrap_or(f64::INFINITY));
    fps.map_or(0, |f| ((span * f).round() as u64).div_ceil(job.video.every))
}

pub(super) fn video(
    det: &Detector,
    job: &Job,
    path: &Path,
    probe: Result<Probe, String>,
    rows: &mut Rows,
    stats: &mut Stats,
    pb: &ProgressBar,
) -> Result<(), Stop> {
    let started = Instant::now();
    let name = path.to_string_lossy().into_owned();
    stats.videos += 1;
    let failed = |rows: &mut Rows, stats: &mut Stats, why: &str| -> Result<(), Stop> {
        say!(pb, "sshface: error: {why}");
        stats.failed += 1;
        rows.error(&name, why).map_err(Stop::Output)
    };
    let probe = match probe {
        Ok(p) => p,
        Err(why) => return failed(rows, stats, &why),
    };
    pb.set_length(expected(&probe, job));
    let v = job.video;
    let outs = [&job.visual.blur, &job.visual.draw];
    let rate = probe.rate.map(|r| r.every(v.every));
    if outs.iter().any(|o| o.is_some()) && rate.is_none() {
        let why =
            format!("video {name}: ffprobe reports no frame rate, which the output video needs");
        return failed(rows, stats, &why);
    }
    let mut outputs = Outputs {
        specs: outs.map(|o| {
            Some(encode::Spec {
                path: o.as_deref()?,
                source: path,
                rate: rate?,
                start: v.start,
                duration: v.duration,
                audio: probe.has_audio && !v.no_audio,
                codec: v.video_codec.as_deref(),
            })
        }),
        encoders: [None, None],
    };
    let spec = Spec {
        path,
        every: v.every,
        start: v.start,
        duration: v.duration,
        max_side: job.max_side,
        rate: probe.rate,
        codec: &probe.codec,
    };
    let decoder = match Decoder::spawn(&spec) {
        Ok(d) => d,
        Err(e) => return failed(rows, stats, &format!("video {name}: {e:#}")),
    };
    let frames_before = stats.frames;
    let faces_before = stats.faces;
    let (tx, rx) = sync_channel::<Frame>(job.batch);
    let (outcome, r) = std::thread::scope(|scope| {
        let dec = scope.spawn(|| decoder.run(&spec, tx, pb));
        let r = batches(det, job, &name, rx, rows, stats, pb, &mut outputs);
        (dec.join(), r)
    });
    let finished = outputs.finish();
    let secs = started.elapsed().as_secs_f64();
    let frames = stats.frames - frames_before;
    let kept = if v.every > 1 {
        format!(" (1 in {})", v.every)
    } else {
        String::new()
    };
    say!(
        pb,
        "sshface: {name}: {frames} frames{kept}, {} faces, {secs:.1} s, {:.2} frames/s ({} {}x{} {})",
        stats.faces - faces_before,
        frames as f64 / secs.max(1e-9),
        probe.codec,
        probe.width,
        probe.height,
        probe.container
    );
    match r {
        Err(Halt::Run(s)) => return Err(s),
        Err(Halt::Video(why)) => {
            finished?;
            return failed(rows, stats, &why);
        }
        Ok(()) => finished?,
    }
    match outcome {
        Ok(Some(why)) => failed(rows, stats, &why),
        Ok(None) => Ok(()),
        Err(_) => failed(
            rows,
            stats,
            &format!("video {name}: the decoding thread panicked"),
        ),
    }
}

/// Receives frames and runs them in batches of `job.batch` frames of one size; returns when the decoder is done,
/// or early (dropping the receiver, which stops the decoder).
#[allow(clippy::too_many_arguments)]
fn batches(
    det: &Detector,
    job: &Job,
    name: &str,
    rx: Receiver<Frame>,
    rows: &mut Rows,
    stats: &mut Stats,
    pb: &ProgressBar,
    outputs: &mut Outputs,
) -> Result<(), Halt> {
    let blur = job.visual.blur();
    let mut batch: Vec<Frame> = Vec::with_capacity(job.batch);
    loop {
        let next = rx.recv().ok();
        if status::interrupted() {
            return Err(Halt::Run(Stop::Interrupted));
        }
        let size = |f: &Frame| f.p.img.dimensions();
        let full = match (&next, batch.first()) {
            (Some(f), Some(b)) => size(f) != size(b),
            (None, _) => true,
            _ => false,
        };
        // Run the batch when the next frame changes size, when the decoder is done, or when the batch is full.
        let mut flush = |batch: &mut Vec<Frame>| {
            let frames = std::mem::take(batch);
            run(
                det,
                job,
                name,
                frames,
                blur.as_ref(),
                rows,
                stats,
                pb,
                outputs,
            )
        };
        if full && !batch.is_empty() {
            flush(&mut batch)?;
        }
        let Some(f) = next else { return Ok(()) };
        batch.push(f);
        if batch.len() == job.batch {
            flush(&mut batch)?;
        }
    }
}

/// Detects (and anonymises) one batch and writes its rows and output frames in order.
#[allow(clippy::too_many_arguments)]
fn run(
    det: &Detector,
    job: &Job,
    name: &str,
    batch: Vec<Frame>,
    blur: Option<&Blur>,
    rows: &mut Rows,
    stats: &mut Stats,
    pb: &ProgressBar,
    outputs: &mut Outputs,
) -> Result<(), Halt> {
    let imgs: Vec<RgbImage> = batch.iter().map(|f| f.p.img.clone()).collect();
    let results = match guarded(|| super::super::visual::detect(det, &imgs, blur))? {
        Ok(r) => r,
        Err(e) if status::is_device(&e) => {
            return Err(Halt::Run(Stop::Device(format!("{name}: {e}"))))
        }
        Err(e) => {
            return Err(Halt::Video(format!(
                "video {name}: frame {}: {e}",
                batch[0].index
            )))
        }
    };
    for ((f, (faces, anonymised)), img) in batch.into_iter().zip(results).zip(imgs) {
        if let Some(a) = anonymised {
            outputs.push(0, || a)?;
        }
        let (w, h) = img.dimensions();
        outputs.push(1, || {
            // Drawn like the rows: clipped and limited (every face is still blurred).
            let shown = sshface::options::finish_faces(
                faces.clone(),
                job.clip.then_some((w as f32, h as f32)),
                job.max_faces,
            );
            let mut copy = img;
            super::super::draw::draw(&mut copy, &shown);
            copy
        })?;
        let p = &f.p;
        let faces = buckets::to_original(faces, p.factor);
        let faces = sshface::options::finish_faces(
            faces,
            job.clip.then_some((p.width as f32, p.height as f32)),
            job.max_faces,
        );
        stats.frames += 1;
        stats.faces += faces.len();
        pb.inc(1);
        rows.frame(name, f.index, f.time, (p.width, p.height), &faces)?;
    }
    Ok(())
}
