//! `sshface detect`: JSON on stdout, one object per image, streamed as each batch finishes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use image::RgbImage;
use serde::Serialize;
use sshface::{Detector, Face, Protocol};

use super::precision::PrecisionArgs;
use super::{progress, say, GpuArgs, ModelArg};

#[derive(Args)]
pub struct DetectArgs {
    /// Network to run.
    #[arg(long, value_enum, default_value = "retinaface-mnv2")]
    model: ModelArg,
    /// Weight file (default: the bundled retinaface-mnv2 weights).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Keep detections with score > F (default 0.5).
    #[arg(long)]
    score: Option<f32>,
    /// NMS IoU threshold (default 0.4 for retinaface-mnv2, 0.3 for ssh-vgg16).
    #[arg(long)]
    nms: Option<f32>,
    /// Write the raw per-anchor outputs of the first image to this safetensors file.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// ssh-vgg16: one fixed resize factor instead of the single-scale 1200/1600 rule.
    #[arg(long, conflicts_with = "pyramid")]
    scale: Option<f64>,
    /// ssh-vgg16: the pyramid protocol (levels ×0.625, 1, 1.5, 2 of the 800/1200 base).
    #[arg(long)]
    pyramid: bool,
    /// Images per GPU submit.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(flatten)]
    precision: PrecisionArgs,
    /// Also read image paths from this file, one per line (`-`: standard input), for archives too large for
    /// the command line.
    #[arg(long)]
    list: Option<PathBuf>,
    /// Image files (PNG, JPEG, BMP, WebP, TIFF) or folders, searched recursively in name order.
    #[arg(required_unless_present = "list")]
    images: Vec<PathBuf>,
}

/// One image of the output array; field order is the documented schema's.
#[derive(Serialize)]
struct ImageOut {
    image: String,
    width: u32,
    height: u32,
    faces: Vec<FaceOut>,
}

#[derive(Serialize)]
struct FaceOut {
    #[serde(rename = "box")]
    bbox: [f64; 4],
    score: f64,
    landmarks: Option<[[f64; 2]; 5]>,
}

/// The f64 with the f32's shortest decimal form, so JSON shows 177.34367 rather than 177.34367370605469.
fn short(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::NAN)
}

fn face_out(f: &Face) -> FaceOut {
    FaceOut {
        bbox: f.bbox.map(short),
        score: short(f.score),
        landmarks: f.landmarks.map(|l| l.map(|p| p.map(short))),
    }
}

pub fn run(a: DetectArgs) -> anyhow::Result<ExitCode> {
    let mut b = Detector::builder()
        .model(a.model.into())
        .adapter(a.gpu.options()?)
        .precision(a.precision.precision);
    if let Some(w) = &a.weights {
        b = b.weights(w);
    }
    if let Some(s) = a.score {
        b = b.score_threshold(s);
    }
    if let Some(n) = a.nms {
        b = b.nms_threshold(n);
    }
    if a.model == ModelArg::RetinafaceMnv2 && (a.scale.is_some() || a.pyramid) {
        anyhow::bail!("--scale and --pyramid apply to --model ssh-vgg16 only");
    }
    if let Some(s) = a.scale {
        b = b.protocol(Protocol::Scale(s));
    } else if a.pyramid {
        b = b.protocol(Protocol::Pyramid);
    }
    let images = collect_images(&a.images, a.list.as_deref())?;
    let det = b.build()?;
    eprintln!(
        "sshface: model {} on {}",
        det.model().name(),
        det.describe()
    );

    let mut failed = 0usize;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "[")?;
    let mut first = true;
    let batch = a.batch.max(1);
    let pb = progress(images.len());
    let mut dump = a.dump.clone();
    // Decoding runs one batch ahead of the GPU on its own thread.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(PathBuf, sshface::Result<RgbImage>)>>(1);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let images = &images;
        scope.spawn(move || {
            for chunk in images.chunks(batch) {
                let decoded = chunk
                    .iter()
                    .map(|p| (p.clone(), sshface::image_io::load_rgb(p)))
                    .collect();
                if tx.send(decoded).is_err() {
                    break;
                }
            }
        });
        for chunk in rx {
            let chunk_len = chunk.len() as u64;
            let (mut paths, mut imgs) = (Vec::new(), Vec::<RgbImage>::new());
            for (p, r) in chunk {
                match r {
                    Ok(img) => {
                        paths.push(p);
                        imgs.push(img);
                    }
                    Err(e) => {
                        failed += 1;
                        say!(pb, "sshface: error: {e}");
                    }
                }
            }
            if let (Some(path), Some(p), Some(img)) = (&dump, paths.first(), imgs.first()) {
                let tensors = det.dump(img)?;
                let meta = HashMap::from([
                    ("model".to_string(), det.model().name().to_string()),
                    ("image".to_string(), p.display().to_string()),
                ]);
                sshface::convert::write_safetensors(path, &tensors, &meta)?;
                say!(
                    pb,
                    "sshface: wrote the raw outputs of {} to {}",
                    p.display(),
                    path.display()
                );
                dump = None;
            }
            let truncated = det.truncated_images();
            // A batch that fails (e.g. one image too large for the device) must not hide the others:
            // retry its images one by one so each error names its own file.
            let results: Vec<Option<Vec<Face>>> = match det.detect_batch(&imgs) {
                Ok(r) => r.into_iter().map(Some).collect(),
                Err(_) if imgs.len() > 1 => paths
                    .iter()
                    .zip(&imgs)
                    .map(|(p, img)| {
                        det.detect(img)
                            .map_err(|e| say!(pb, "sshface: error: {}: {e}", p.display()))
                            .ok()
                    })
                    .collect(),
                Err(e) => {
                    say!(pb, "sshface: error: {}: {e}", paths[0].display());
                    vec![None]
                }
            };
            if det.truncated_images() > truncated {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                say!(pb,
                    "sshface: warning: more than {} candidates above the score threshold in one of [{}]; only the best entered NMS (raise --score)",
                    sshface::model::pipeline::MAX_CANDIDATES,
                    names.join(", ")
                );
            }
            for ((p, img), faces) in paths.iter().zip(&imgs).zip(results) {
                let Some(faces) = faces else {
                    failed += 1;
                    continue;
                };
                let obj = serde_json::to_string(&ImageOut {
                    image: p.to_string_lossy().into_owned(),
                    width: img.width(),
                    height: img.height(),
                    faces: faces.iter().map(face_out).collect(),
                })?;
                if !first {
                    writeln!(out, ",")?;
                }
                first = false;
                write!(out, "  {obj}")?;
                out.flush()?;
            }
            pb.inc(chunk_len);
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    writeln!(out, "\n]")?;
    if failed > 0 {
        eprintln!("sshface: {failed} of {} images failed", images.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The images to process: each argument (a folder is searched recursively for image files, in name order), then
/// the lines of `list`. A missing path is kept, so that it is reported as an error in its turn.
fn collect_images(args: &[PathBuf], list: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in args {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    if let Some(l) = list {
        let text = if l == Path::new("-") {
            std::io::read_to_string(std::io::stdin())?
        } else {
            std::fs::read_to_string(l)
                .map_err(|e| anyhow::anyhow!("--list {}: {e}", l.display()))?
        };
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(PathBuf::from),
        );
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if super::eval::is_image(&p) {
            out.push(p);
        }
    }
    Ok(())
}
