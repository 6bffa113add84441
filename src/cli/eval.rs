//! `sshface eval`: detection result files for the WIDER FACE evaluation toolkit, one per image:
//! `<out>/<event>/<name>.txt` holding the image name, the count, then `x1 y1 w h score` per detection with
//! w = int(x2) − int(x1), h = int(y2) − int(y1) and truncation (SSH's `lib/datasets/wider.py`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use sshface::{Detector, Face, Protocol};

use super::precision::PrecisionArgs;
use super::{progress, say, GpuArgs, ModelArg};

#[derive(Args)]
pub struct EvalArgs {
    /// WIDER FACE image folder (`WIDER_val/images`): one sub-folder per event.
    #[arg(long, requires = "out")]
    images: Option<PathBuf>,
    /// Output folder for the result files.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Compute Easy / Medium / Hard AP against the toolkit's ground truth in DIR (`wider_face_val.mat`,
    /// `wider_{easy,medium,hard}_val.mat`).
    #[arg(long, value_name = "DIR")]
    gt: Option<PathBuf>,
    /// With --gt: the result files to score (default: --out).
    #[arg(long, value_name = "DIR", requires = "gt")]
    pred: Option<PathBuf>,
    /// With --gt: where pr_curves.csv and pr_curves.png go (default: the result folder).
    #[arg(long, value_name = "DIR", requires = "gt")]
    curves: Option<PathBuf>,
    /// Network to run.
    #[arg(long, value_enum, default_value = "retinaface-mnv2")]
    model: ModelArg,
    /// Weight file (default: the bundled retinaface-mnv2 weights).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Score threshold (default: 0.05 for ssh-vgg16 as in the paper, 0.02 for retinaface-mnv2 as upstream).
    #[arg(long, allow_negative_numbers = true, value_parser = super::unit_interval)]
    score: Option<f32>,
    /// ssh-vgg16: the pyramid protocol.
    #[arg(long)]
    pyramid: bool,
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(flatten)]
    precision: PrecisionArgs,
}

/// The lines of one result file.
pub fn wider_lines(name: &str, faces: &[Face]) -> String {
    let mut s = format!("{name}\n{}\n", faces.len());
    for f in faces {
        let [x1, y1, x2, y2] = f.bbox.map(|v| v.trunc() as i64);
        s.push_str(&format!("{x1} {y1} {} {} {}\n", x2 - x1, y2 - y1, f.score));
    }
    s
}

fn is_image(p: &Path) -> bool {
    sshface::image_io::is_image_path(p)
}

fn sorted_dir(p: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

pub fn run(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    match (&a.images, &a.out) {
        (Some(images), Some(out)) => code = write_results(&a, images, out)?,
        (None, _) if a.gt.is_none() => {
            anyhow::bail!("eval needs --images DIR --out DIR (write result files), --gt DIR (score them), or both")
        }
        _ => {}
    }
    if let Some(gt) = &a.gt {
        let Some(pred) = a.pred.as_ref().or(a.out.as_ref()) else {
            anyhow::bail!("--gt needs the result files: --pred DIR, or --images and --out to write them first");
        };
        let curves = a.curves.as_ref().unwrap_or(pred);
        for (setting, ap) in super::eval_ap::run(pred, gt, curves)? {
            println!("{setting:<6} AP: {ap:.4}");
        }
    }
    Ok(code)
}

fn write_results(a: &EvalArgs, images: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let model: sshface::Model = a.model.into();
    let score = a.score.unwrap_or(match model {
        sshface::Model::SshVgg16 => 0.05,
        sshface::Model::RetinafaceMnv2 => 0.02,
    });
    let mut b = Detector::builder()
        .model(model)
        .adapter(a.gpu.options()?)
        .precision(a.precision.precision)
        .score_threshold(score);
    if let Some(w) = &a.weights {
        b = b.weights(w);
    }
    if a.pyramid {
        b = b.protocol(Protocol::Pyramid);
    }
    let mut work = Vec::new();
    for event in sorted_dir(images)?.into_iter().filter(|p| p.is_dir()) {
        let files: Vec<PathBuf> = sorted_dir(&event)?
            .into_iter()
            .filter(|p| is_image(p))
            .collect();
        work.push((event, files));
    }
    // Checked before opening the GPU: WIDER FACE's layout is one sub-folder per event.
    if work.iter().all(|(_, f)| f.is_empty()) {
        anyhow::bail!(
            "{}: no images in event sub-folders (expected WIDER_val/images/<event>/<name>.jpg; a flat folder of \
             images is `sshface detect --format wider --out DIR`)",
            images.display()
        );
    }
    let det = b.build()?;
    eprintln!("sshface: model {} on {}", model.name(), det.describe());
    let (mut done, mut failed) = (0usize, 0usize);
    let pb = progress(work.iter().map(|(_, f)| f.len()).sum());
    for (event, files) in work {
        let out_dir = out.join(event.file_name().unwrap_or_default());
        std::fs::create_dir_all(&out_dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", out_dir.display()))?;
        for img_path in files {
            pb.inc(1);
            let stem = img_path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let max = Some(sshface::image_io::DEFAULT_MAX_PIXELS);
            let faces = sshface::image_io::load_rgb_checked(&img_path, max).and_then(|d| {
                if let Some(why) = &d.partial {
                    say!(
                        pb,
                        "sshface: warning: image {}: {why}; detecting on what decoded",
                        img_path.display()
                    );
                }
                det.detect(&d.image)
            });
            match faces {
                Ok(faces) => {
                    let file = out_dir.join(format!("{stem}.txt"));
                    let mut f = std::fs::File::create(&file)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                    f.write_all(wider_lines(&stem, &faces).as_bytes())?;
                    done += 1;
                }
                Err(e) => {
                    failed += 1;
                    say!(pb, "sshface: error: {}: {e}", img_path.display());
                }
            }
        }
    }
    pb.finish_and_clear();
    eprintln!(
        "sshface: wrote {done} result files to {} ({failed} images failed)",
        out.display()
    );
    Ok(if failed > 0 || done == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
