//! `sshface detect`: JSON on stdout, one object per image, streamed as each batch finishes.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use sshface::{Detector, Face};

use super::{GpuArgs, ModelArg};

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
    /// Images per GPU submit.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[command(flatten)]
    gpu: GpuArgs,
    /// Image files (PNG, JPEG, BMP, WebP, TIFF).
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn face_json(f: &Face) -> serde_json::Value {
    json!({
        "box": f.bbox,
        "score": f.score,
        "landmarks": f.landmarks,
    })
}

pub fn run(a: DetectArgs) -> anyhow::Result<ExitCode> {
    let mut b = Detector::builder()
        .model(a.model.into())
        .adapter(a.gpu.options()?);
    if let Some(w) = &a.weights {
        b = b.weights(w);
    }
    if let Some(s) = a.score {
        b = b.score_threshold(s);
    }
    if let Some(n) = a.nms {
        b = b.nms_threshold(n);
    }
    let det = b.build()?;
    eprintln!(
        "sshface: model {} on {}",
        det.model().name(),
        det.context().describe()
    );

    let mut failed = 0usize;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "[")?;
    let mut first = true;
    let batch = a.batch.max(1);
    for (ci, chunk) in a.images.chunks(batch).enumerate() {
        let mut loaded = Vec::new();
        for p in chunk {
            match sshface::image_io::load_rgb(p) {
                Ok(img) => loaded.push((p, img)),
                Err(e) => {
                    failed += 1;
                    eprintln!("sshface: error: {e}");
                }
            }
        }
        if ci == 0 {
            if let (Some(path), Some((_, img))) = (&a.dump, loaded.first()) {
                let d = det.dump_heads(img)?;
                let n = d.num_anchors;
                let meta = HashMap::from([("model".to_string(), det.model().name().to_string())]);
                sshface::convert::write_safetensors(
                    path,
                    &[
                        ("cls_logits".into(), vec![n, 2], d.cls_logits),
                        ("bbox".into(), vec![n, 4], d.bbox),
                        ("landm".into(), vec![n, 10], d.landm),
                        ("priors".into(), vec![n, 4], d.priors),
                    ],
                    &meta,
                )?;
                eprintln!(
                    "sshface: wrote raw heads of {} to {}",
                    loaded[0].0.display(),
                    path.display()
                );
            }
        }
        let imgs: Vec<_> = loaded.iter().map(|(_, i)| i.clone()).collect();
        let results = match det.detect_batch(&imgs) {
            Ok(r) => r,
            Err(e) => {
                // A failing batch must not hide the others: report each of its images and go on.
                for (p, _) in &loaded {
                    failed += 1;
                    eprintln!("sshface: error: {}: {e}", p.display());
                }
                continue;
            }
        };
        for ((p, img), faces) in loaded.iter().zip(results) {
            let obj = json!({
                "image": p.to_string_lossy(),
                "width": img.width(),
                "height": img.height(),
                "faces": faces.iter().map(face_json).collect::<Vec<_>>(),
            });
            if !first {
                writeln!(out, ",")?;
            }
            first = false;
            write!(out, "  {obj}")?;
            out.flush()?;
        }
    }
    writeln!(out, "\n]")?;
    if failed > 0 {
        eprintln!("sshface: {failed} of {} images failed", a.images.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
