//! One unit of `detect`: decoding one batch ahead on a second thread (files or a tar stream), batching by size
//! bucket, detection, and records back in input order.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;

use image::RgbImage;
use indicatif::ProgressBar;
use sshface::image_io::Decoded;
use sshface::Detector;

use super::buckets::{self, Prepared};
use super::output::{Ordered, Record, Writer};
use super::units::{Source, Unit};
use super::visual::Detected;
use super::{say, status};

pub struct Config {
    pub batch: usize,
    pub max_side: Option<u32>,
    /// Refuse images with more pixels, from their header (`None`: no limit).
    pub max_pixels: Option<u64>,
    /// Clip boxes to the original image (the default; `--raw-boxes` turns it off).
    pub clip: bool,
    pub max_faces: Option<usize>,
    /// The pad pixel when bucketing.
    pub bucket_pad: Option<[u8; 3]>,
    /// Image outputs (`--draw`, `--crops`), when any is asked for.
    pub visual: Option<super::visual::VisualArgs>,
}

#[derive(Default)]
pub struct Stats {
    pub images: usize,
    pub faces: usize,
    pub failed: usize,
    /// `--stats N`: a memory line after the first batch and every N images.
    pub report_every: Option<usize>,
    /// Images done when the next memory line is due.
    pub next_report: usize,
}

/// Why a unit stopped before its end; its output is then dropped.
pub enum Stop {
    Interrupted,
    Device(String),
    Output(std::io::Error),
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Output(e)
    }
}

struct Item {
    idx: usize,
    name: String,
    prep: Result<Prepared, String>,
}

/// An image waiting in its bucket.
struct Queued {
    idx: usize,
    name: String,
    p: Prepared,
}

/// Queues by canvas (`None`: unbucketed), in a fixed order so the final flushes are deterministic.
type Buckets = BTreeMap<Option<(u32, u32)>, Vec<Queued>>;

/// Images waiting in buckets, at most this many batches' worth, so memory stays bounded whatever the size mix.
const MAX_PENDING_BATCHES: usize = 8;

pub fn run_unit(
    det: &Detector,
    unit: &Unit,
    cfg: &Config,
    w: &mut Writer,
    stats: &mut Stats,
    pb: &ProgressBar,
    dump: &mut Option<PathBuf>,
) -> Result<(), Stop> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Item>(cfg.batch);
    std::thread::scope(|scope| {
        scope.spawn(|| decode(&unit.source, cfg, tx, pb));
        let mut ordered = Ordered::default();
        let mut queues = Buckets::new();
        // Files arrive sorted by canvas when bucketing: a new canvas means the previous one is complete.
        let sorted = cfg.bucket_pad.is_some() && matches!(unit.source, Source::Files(_));
        let mut last = None;
        for item in rx {
            if status::interrupted() {
                return Err(Stop::Interrupted);
            }
            let p = match item.prep {
                Ok(p) => p,
                Err(e) => {
                    say!(pb, "sshface: error: {e}");
                    stats.images += 1;
                    stats.failed += 1;
                    pb.inc(1);
                    ordered.push(
                        item.idx,
                        Record {
                            image: item.name,
                            result: Err(e),
                        },
                        w,
                    )?;
                    continue;
                }
            };
            if sorted && last.is_some_and(|c| c != p.canvas) {
                if let Some(q) = last
                    .and_then(|c| queues.get_mut(&c))
                    .filter(|q| !q.is_empty())
                {
                    let b = std::mem::take(q);
                    flush(cfg, det, b, w, &mut ordered, stats, pb, dump)?;
                }
            }
            last = Some(p.canvas);
            let q = queues.entry(p.canvas).or_default();
            q.push(Queued {
                idx: item.idx,
                name: item.name,
                p,
            });
            if q.len() >= cfg.batch {
                let b = std::mem::take(q);
                flush(cfg, det, b, w, &mut ordered, stats, pb, dump)?;
            } else if queues.values().map(Vec::len).sum::<usize>() > MAX_PENDING_BATCHES * cfg.batch
            {
                if let Some(q) = queues.values_mut().max_by_key(|q| q.len()) {
                    let b = std::mem::take(q);
                    flush(cfg, det, b, w, &mut ordered, stats, pb, dump)?;
                }
            }
        }
        for q in queues.into_values().filter(|q| !q.is_empty()) {
            if status::interrupted() {
                return Err(Stop::Interrupted);
            }
            flush(cfg, det, q, w, &mut ordered, stats, pb, dump)?;
        }
        Ok(())
    })
}

/// Decodes and prepares the unit's images in order; stops when the receiver is gone.
fn decode(source: &Source, cfg: &Config, tx: SyncSender<Item>, pb: &ProgressBar) {
    // A decoder that panics on a hostile file must cost that image only, not the run.
    let prep = |name: &str, load: &dyn Fn() -> sshface::Result<Decoded>| {
        let r = catch_unwind(AssertUnwindSafe(|| {
            load().map(|d| {
                if let Some(why) = d.partial {
                    say!(
                        pb,
                        "sshface: warning: image {name}: {why}; detecting on what decoded"
                    );
                }
                buckets::prepare(d.image, cfg.max_side, cfg.bucket_pad)
            })
        }));
        match r {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("image {name}: the image decoder panicked")),
        }
    };
    match source {
        Source::Files(paths) => {
            let order = match cfg.bucket_pad {
                Some(_) => buckets::canvas_order(paths, cfg.max_side),
                None => (0..paths.len()).collect(),
            };
            for idx in order {
                let p = &paths[idx];
                let name = p.to_string_lossy().into_owned();
                let prep = prep(&name, &|| {
                    if p == Path::new(super::units::STDIN) {
                        let mut b = Vec::new();
                        std::io::stdin().read_to_end(&mut b).map_err(|e| {
                            sshface::Error::Image {
                                path: "-".into(),
                                msg: format!("cannot read standard input: {e}"),
                            }
                        })?;
                        return sshface::image_io::decode_rgb_checked("-", &b, cfg.max_pixels);
                    }
                    sshface::image_io::load_rgb_checked(p, cfg.max_pixels)
                });
                decoded(pb);
                let item = Item { idx, name, prep };
                if tx.send(item).is_err() {
                    return;
                }
            }
        }
        Source::Tar(path) => {
            let mut idx = 0;
            let r = sshface::readers::tar::read_image_file(path, |name, bytes| {
                pb.inc_length(1);
                let prep = bytes.and_then(|b| {
                    prep(&name, &|| {
                        sshface::image_io::decode_rgb_checked(&name, &b, cfg.max_pixels)
                    })
                });
                decoded(pb);
                idx += 1;
                tx.send(Item {
                    idx: idx - 1,
                    name,
                    prep,
                })
                .is_ok()
            });
            if let Err(e) = r {
                pb.inc_length(1);
                let name = path.to_string_lossy().into_owned();
                let _ = tx.send(Item {
                    idx,
                    name,
                    prep: Err(e),
                });
            }
        }
    }
}

/// Counts an image read in the bar's message: results come a whole batch at a time, so without it a run shows
/// `0/8 images` with nothing moving until the first batch ends.
pub(super) fn decoded(pb: &ProgressBar) {
    let n = pb
        .message()
        .split(' ')
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    pb.set_message(format!("{n} read"));
}

/// A panic inside the GPU stack (device lost, driver bug) is a device failure, not a crash without output.
pub(super) fn guarded<T>(
    f: impl FnOnce() -> sshface::Result<T>,
) -> Result<sshface::Result<T>, Stop> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Stop::Device(format!("the GPU stack panicked: {msg}"))
    })
}

#[allow(clippy::too_many_arguments)]
fn flush(
    cfg: &Config,
    det: &Detector,
    batch: Vec<Queued>,
    w: &mut Writer,
    ordered: &mut Ordered,
    stats: &mut Stats,
    pb: &ProgressBar,
    dump: &mut Option<PathBuf>,
) -> Result<(), Stop> {
    let mut imgs = Vec::with_capacity(batch.len());
    let meta: Vec<Queued> = batch
        .into_iter()
        .map(|mut q| {
            imgs.push(std::mem::replace(&mut q.p.img, RgbImage::new(0, 0)));
            q
        })
        .collect();
    if let (Some(path), Some(m), Some(img)) = (dump.as_ref(), meta.first(), imgs.first()) {
        let tensors = guarded(|| det.dump(img))?.map_err(|e| Stop::Device(e.to_string()))?;
        let info = HashMap::from([
            ("model".to_string(), det.model().name().to_string()),
            ("image".to_string(), m.name.clone()),
        ]);
        sshface::convert::write_safetensors(path, &tensors, &info)
            .map_err(|e| Stop::Output(std::io::Error::other(e.to_string())))?;
        say!(
            pb,
            "sshface: wrote the raw outputs of {} to {}",
            m.name,
            path.display()
        );
        *dump = None;
    }
    let truncated = det.truncated_images();
    // A batch that fails (e.g. one image too large for the device) must not hide the others: retry its images one
    // by one so each error names its own file.
    let blur = cfg.visual.as_ref().and_then(|v| v.blur());
    let run = |imgs: &[RgbImage]| super::visual::detect(det, imgs, blur.as_ref());
    let results: Vec<sshface::Result<Detected>> = match guarded(|| run(&imgs))? {
        Ok(r) => r.into_iter().map(Ok).collect(),
        Err(e) if imgs.len() == 1 => vec![Err(e)],
        Err(e) if status::is_fatal(&e) => {
            let names: Vec<&str> = meta.iter().map(|m| m.name.as_str()).collect();
            return Err(Stop::Device(format!("[{}]: {e}", names.join(", "))));
        }
        Err(_) => imgs
            .iter()
            .map(|img| guarded(|| run(std::slice::from_ref(img)).map(|mut v| v.remove(0))))
            .collect::<Result<_, Stop>>()?,
    };
    if det.truncated_images() > truncated {
        let names: Vec<&str> = meta.iter().map(|m| m.name.as_str()).collect();
        say!(pb,
            "sshface: warning: more than {} candidates above the score threshold in one of [{}]; only the best entered NMS (raise --score)",
            sshface::model::pipeline::MAX_CANDIDATES,
            names.join(", ")
        );
    }
    for ((Queued { idx, name, p }, r), img) in meta.into_iter().zip(results).zip(&imgs) {
        let result = match r {
            Ok((faces, anonymised)) => {
                if let Some(v) = &cfg.visual {
                    // The image the detector saw, without the bucket padding.
                    let w = (p.width as f32 / p.factor[0]).round() as u32;
                    let h = (p.height as f32 / p.factor[1]).round() as u32;
                    let seen = |i: &RgbImage| image::imageops::crop_imm(i, 0, 0, w, h).to_image();
                    let anonymised = anonymised.as_ref().map(seen);
                    // Drawn and cropped like the rows: clipped and limited; every face is still blurred.
                    let clip = cfg.clip.then_some((w as f32, h as f32));
                    let shown = sshface::options::finish_faces(faces.clone(), clip, cfg.max_faces);
                    v.emit(&name, &seen(img), anonymised.as_ref(), &shown)
                        .map_err(|e| Stop::Output(std::io::Error::other(format!("{e:#}"))))?;
                }
                let faces = buckets::to_original(faces, p.factor);
                let clip = cfg.clip.then_some((p.width as f32, p.height as f32));
                // Clipped after mapping back, so padding and --max-side cannot leave a box outside the original image.
                let faces = sshface::options::finish_faces(faces, clip, cfg.max_faces);
                stats.faces += faces.len();
                Ok((p.width, p.height, faces))
            }
            Err(e) if status::is_device(&e) => return Err(Stop::Device(format!("{name}: {e}"))),
            Err(e) => {
                say!(pb, "sshface: error: {name}: {e}");
                stats.failed += 1;
                Err(e.to_string())
            }
        };
        stats.images += 1;
        pb.inc(1);
        ordered.push(
            idx,
            Record {
                image: name,
                result,
            },
            w,
        )?;
    }
    if let Some(n) = stats
        .report_every
        .filter(|_| stats.images >= stats.next_report)
    {
        say!(pb, "{}", super::memstats::line(det, stats));
        stats.next_report = (stats.images / n + 1) * n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bar_counts_images_read() {
        let pb = indicatif::ProgressBar::hidden();
        super::decoded(&pb);
        super::decoded(&pb);
        assert_eq!(pb.message(), "2 read");
    }
}
