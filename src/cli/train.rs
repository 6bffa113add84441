//! `sshface train`: SSH's training recipe on the GPU, with checkpoints, a jsonl log and `--resume`; the recipe
//! options it shares with `train-step`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sshface::model::weights::WeightFile;
use sshface::train::data;
use sshface::train::step::StepLosses;
use sshface::train::trainer::{TrainScale, Trainer};
use sshface::GpuContext;

use super::train_recipe::{losses_json, timing, RecipeArgs, SamplingArg};
use super::{say, GpuArgs, ModelArg};

#[derive(Args)]
pub struct TrainArgs {
    /// Network to train (only ssh-vgg16 has a training recipe).
    #[arg(long, value_enum, default_value = "ssh-vgg16")]
    model: ModelArg,
    /// Initial weights: an ImageNet VGG-16 (`sshface convert --from caffe` of VGG_ILSVRC_16_layers, or torchvision's
    /// `features.N.*` names) or a full ssh-vgg16 checkpoint to fine-tune.
    #[arg(long)]
    init: PathBuf,
    /// Folder the annotation paths are relative to (WIDER_train/images).
    #[arg(long)]
    images: PathBuf,
    /// wider_face_train_bbx_gt.txt (or a file in its format).
    #[arg(long)]
    annotations: PathBuf,
    /// Output folder: checkpoints, solver states and train.jsonl.
    #[arg(long)]
    out: PathBuf,
    /// Iterations (updates) in all.
    #[arg(long, default_value_t = 21_000)]
    iters: u64,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.004)]
    lr: f32,
    /// Iteration at which the learning rate drops ×0.1.
    #[arg(long, default_value_t = 18_000)]
    step: u64,
    /// Images whose gradients are accumulated per update.
    #[arg(long, default_value_t = 2)]
    iter_size: usize,
    /// Shortest side of the training scale.
    #[arg(long, default_value_t = 1200.0)]
    scale: f64,
    /// Longest side at most.
    #[arg(long, default_value_t = 1600.0)]
    max_size: f64,
    /// No horizontal flips.
    #[arg(long)]
    no_flip: bool,
    /// Checkpoint every N iterations (and at the end).
    #[arg(long, default_value_t = 1000)]
    snapshot: u64,
    /// Continue from the last checkpoint in --out (weights, momentum, iteration).
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    recipe: RecipeArgs,
    #[command(flatten)]
    gpu: GpuArgs,
}

/// The newest `ssh_vgg16_iter_N.safetensors` in `dir` that has its solver file.
fn last_checkpoint(dir: &Path) -> anyhow::Result<Option<(u64, PathBuf, PathBuf)>> {
    let mut best = None;
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for e in rd {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(n) = name
            .strip_prefix("ssh_vgg16_iter_")
            .and_then(|r| r.strip_suffix(".safetensors"))
            .and_then(|r| r.parse::<u64>().ok())
        else {
            continue;
        };
        let solver = dir.join(format!("ssh_vgg16_iter_{n}.solver.safetensors"));
        if solver.exists()
            && best
                .as_ref()
                .is_none_or(|b: &(u64, PathBuf, PathBuf)| n > b.0)
        {
            best = Some((n, p, solver));
        }
    }
    Ok(best)
}

fn checkpoint_paths(dir: &Path, it: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("ssh_vgg16_iter_{it}.safetensors")),
        dir.join(format!("ssh_vgg16_iter_{it}.solver.safetensors")),
    )
}

pub fn train(a: TrainArgs) -> anyhow::Result<ExitCode> {
    if a.model != ModelArg::SshVgg16 {
        bail!("--model: only ssh-vgg16 has a training recipe (retinaface-mnv2 is detection only)");
    }
    if a.iter_size == 0 || a.snapshot == 0 {
        bail!("--iter-size and --snapshot must be at least 1");
    }
    if !(a.scale > 0.0 && a.max_size >= a.scale) {
        bail!(
            "--scale {} and --max-size {} must be > 0 with max-size ≥ scale",
            a.scale,
            a.max_size
        );
    }
    let anns = data::load_wider_train(&a.annotations)?;
    if anns.is_empty() {
        bail!("{}: no images", a.annotations.display());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let ctx = GpuContext::new(&a.gpu.options()?)?;
    let resume = match a.resume {
        true => last_checkpoint(&a.out)?,
        false => None,
    };
    let (start, init) = match &resume {
        Some((n, w, _)) => (*n, w.clone()),
        None => (0, a.init.clone()),
    };
    let wf = WeightFile::open(&init)?;
    let mut t = a.recipe.trainer(&ctx, &wf)?;
    if let Some((n, _, solver)) = &resume {
        t.net.load_momentum(&ctx, &WeightFile::open(solver)?)?;
        eprintln!("sshface: resuming at iteration {n} from {}", init.display());
    }
    let log_path = a.out.join("train.jsonl");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let pb = ProgressBar::new(a.iters);
    if let Ok(s) = ProgressStyle::with_template("{bar:40} {pos}/{len} iterations  {msg}  ETA {eta}")
    {
        pb.set_style(s);
    }
    pb.set_position(start.min(a.iters));
    let n = anns.len();
    let visits = start * a.iter_size as u64..a.iters * a.iter_size as u64;
    // Images are decoded on a loader thread, a few ahead of the GPU, in the order the seed gives.
    let (tx, rx) = std::sync::mpsc::sync_channel(PREFETCH);
    std::thread::scope(|sc| -> anyhow::Result<()> {
        let (anns, images) = (&anns, &a.images);
        let (seed, flips) = (a.recipe.seed, !a.no_flip);
        sc.spawn(move || {
            for visit in visits {
                let (idx, flip) = data::sample(n, visit, seed, flips);
                // The receiver is gone when training stopped (done or failed): stop too.
                if tx
                    .send((idx, data::load_train_image(images, &anns[idx], flip)))
                    .is_err()
                {
                    break;
                }
            }
        });
        let io = LoopIo {
            rx,
            pb: &pb,
            log: &mut log,
            log_path: &log_path,
            anns,
        };
        train_loop(&a, &ctx, &mut t, io)
    })?;
    pb.finish_and_clear();
    Ok(ExitCode::SUCCESS)
}

/// Images decoded ahead of the GPU.
const PREFETCH: usize = 4;

/// What the training loop reads and writes besides the trainer.
struct LoopIo<'a> {
    /// (annotation index, decoded image) in visit order.
    rx: std::sync::mpsc::Receiver<(usize, sshface::Result<data::TrainImage>)>,
    pb: &'a ProgressBar,
    log: &'a mut std::fs::File,
    log_path: &'a Path,
    anns: &'a [data::Annotation],
}

/// The iterations from the progress bar's position (the resumed iteration) to `--iters`.
fn train_loop(a: &TrainArgs, ctx: &GpuContext, t: &mut Trainer, io: LoopIo) -> anyhow::Result<()> {
    let LoopIo {
        rx,
        pb,
        log,
        log_path,
        anns,
    } = io;
    let start = pb.position();
    let meta = |it: u64| {
        HashMap::from([
            ("model".to_string(), "ssh-vgg16".to_string()),
            ("iteration".to_string(), it.to_string()),
            ("init".to_string(), a.init.display().to_string()),
            ("trained_by".to_string(), "sshface train".to_string()),
        ])
    };

    let scale_rule = TrainScale::Rule {
        short: a.scale,
        long: a.max_size,
    };
    for it in start..a.iters {
        let t0 = Instant::now();
        let lr = if it >= a.step { a.lr * 0.1 } else { a.lr };
        let mut sum = StepLosses::default();
        let mut used = 0usize;
        for j in 0..a.iter_size {
            let visit = it * a.iter_size as u64 + j as u64;
            let (idx, loaded) = rx.recv().context("the image loader thread stopped early")?;
            let img = match loaded {
                Ok(img) => img,
                Err(e) => {
                    say!(
                        pb,
                        "sshface: warning: skipping {}: {e}",
                        anns[idx].path.display()
                    );
                    continue;
                }
            };
            if a.recipe.sampling == SamplingArg::Random {
                // Only the seed changes: it is written per step, so the cached plans serve it.
                t.step = a.recipe.step(visit);
            }
            let s = scale_rule.factor(img.hw);
            let l = t.accumulate(ctx, &img.rgb, img.hw, &img.boxes, s)?;
            for k in 0..3 {
                sum.cls[k] += l.cls[k];
                sum.bbox[k] += l.bbox[k];
                sum.sampled[k][0] += l.sampled[k][0];
                sum.sampled[k][1] += l.sampled[k][1];
            }
            sum.flops += l.flops;
            used += 1;
        }
        if used == 0 {
            bail!(
                "iteration {it}: none of its {} images could be read",
                a.iter_size
            );
        }
        // Caffe divides by iter_size whatever was skipped: a skipped image only shrinks the step.
        t.update(ctx, lr, a.iter_size)?;
        for k in 0..3 {
            sum.cls[k] /= used as f32;
            sum.bbox[k] /= used as f32;
        }
        let secs = t0.elapsed().as_secs_f64();
        let line = serde_json::json!({
            "iteration": it + 1,
            "lr": lr,
            "loss": losses_json(&sum),
            "images_per_s": used as f64 / secs,
            "time": timing(secs, sum.flops),
        });
        writeln!(log, "{line}").with_context(|| format!("writing {}", log_path.display()))?;
        pb.set_message(format!(
            "loss {:.4}  {:.2} img/s",
            sum.total(),
            used as f64 / secs
        ));
        pb.inc(1);
        if (it + 1) % a.snapshot == 0 || it + 1 == a.iters {
            let (w, s) = checkpoint_paths(&a.out, it + 1);
            t.net.save(ctx, &w, &meta(it + 1))?;
            t.net.save_solver(ctx, &s, &meta(it + 1))?;
            say!(pb, "sshface: wrote {}", w.display());
        }
    }
    Ok(())
}
