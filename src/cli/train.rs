//! `sshface train`: SSH's training recipe on the GPU, with checkpoints, a jsonl log and `--resume`; the recipe
//! options it shares with `train-step`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sshface::model::weights::WeightFile;
use sshface::ops::ohem::{Normalise, Sampling};
use sshface::train::data;
use sshface::train::net::{Freeze, Init, NewLayers};
use sshface::train::step::{StepConfig, StepLosses};
use sshface::train::trainer::{TrainScale, Trainer};
use sshface::GpuContext;

use super::{say, GpuArgs, ModelArg};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum SamplingArg {
    /// Online hard example mining: per module 256 anchors, ≤ 25% positives, the hardest of each.
    Ohem,
    /// py-faster-rcnn's random subsampling with the same counts.
    Random,
    /// Every labelled anchor.
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NormArg {
    /// Divide the box loss by the number of sampled anchors (the authors' code: 1/256).
    Sampled,
    /// Divide it by the number of sampled positives (the paper's 1/N_pos).
    Positives,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum FreezeArg {
    /// conv1_x and conv2_x frozen (the authors' recipe).
    Caffe,
    /// The whole VGG-16 backbone frozen: only the fusion, the modules and the heads learn.
    Backbone,
    /// Nothing frozen.
    None,
}

/// Options shared by `train` and `train-step`.
#[derive(Args, Clone)]
pub(super) struct RecipeArgs {
    /// Anchor sampling per module and image.
    #[arg(long, value_enum, default_value = "ohem")]
    pub(super) sampling: SamplingArg,
    /// Normaliser of the box regression loss.
    #[arg(long, value_enum, default_value = "sampled")]
    bbox_norm: NormArg,
    /// Layers left unchanged.
    #[arg(long, value_enum, default_value = "caffe")]
    pub(super) freeze: FreezeArg,
    /// Seed of the initialisation of new layers, the image order, flips and random sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Initialisation of the layers the init file lacks (fusion, modules, heads).
    #[arg(long, value_enum, default_value = "gaussian")]
    new_layers: NewLayersArg,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NewLayersArg {
    /// N(0, 0.01), bias 0 (the recipe).
    Gaussian,
    /// He: N(0, 2/fan_in), bias 0 (faster for short trainings).
    He,
}

/// The recipe as `train` runs it without recipe flags: clap's defaults, so that they are written once.
impl Default for RecipeArgs {
    fn default() -> Self {
        let cmd = <RecipeArgs as Args>::augment_args(clap::Command::new("recipe"));
        let m = cmd.get_matches_from(["recipe"]);
        <RecipeArgs as clap::FromArgMatches>::from_arg_matches(&m)
            .expect("the recipe options all have defaults")
    }
}

impl RecipeArgs {
    fn step(&self, salt: u64) -> StepConfig {
        let sampling = match self.sampling {
            SamplingArg::Ohem => Sampling::Ohem {
                batch: 256,
                fg_fraction: 0.25,
            },
            SamplingArg::Random => Sampling::Random {
                batch: 256,
                fg_fraction: 0.25,
                seed: (self.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as u32,
            },
            SamplingArg::All => Sampling::All,
        };
        let normalise = match self.bbox_norm {
            NormArg::Sampled => Normalise::Sampled,
            NormArg::Positives => Normalise::Positives,
        };
        StepConfig {
            sampling,
            normalise,
        }
    }

    /// The trainer of this recipe on `wf`, its loading notes printed.
    pub(super) fn trainer(&self, ctx: &GpuContext, wf: &WeightFile) -> anyhow::Result<Trainer> {
        let t = Trainer::new(ctx, wf, self.freeze(), self.step(0), self.init())?;
        for n in &t.net.notes {
            eprintln!("sshface: {n}");
        }
        Ok(t)
    }

    fn init(&self) -> Init {
        Init {
            seed: self.seed,
            new_layers: match self.new_layers {
                NewLayersArg::Gaussian => NewLayers::Gaussian,
                NewLayersArg::He => NewLayers::He,
            },
        }
    }

    fn freeze(&self) -> Freeze {
        match self.freeze {
            FreezeArg::Caffe => Freeze::Caffe,
            FreezeArg::Backbone => Freeze::Backbone,
            FreezeArg::None => Freeze::Nothing,
        }
    }
}

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

pub(super) fn losses_json(l: &StepLosses) -> serde_json::Value {
    let m = |k: usize| serde_json::json!({"cls": l.cls[k], "bbox": l.bbox[k], "positives": l.sampled[k][0], "negatives": l.sampled[k][1]});
    serde_json::json!({"m1": m(0), "m2": m(1), "m3": m(2), "total": l.total()})
}

/// Wall time of a step (image loading and, on a new input size, building its plan included) and the work it did.
pub(super) fn timing(secs: f64, flops: u64) -> serde_json::Value {
    serde_json::json!({"seconds": secs, "gflop": flops as f64 / 1e9, "gflop_per_s": flops as f64 / 1e9 / secs})
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
    let scale_rule = TrainScale::Rule {
        short: a.scale,
        long: a.max_size,
    };
    let meta = |it: u64| {
        HashMap::from([
            ("model".to_string(), "ssh-vgg16".to_string()),
            ("iteration".to_string(), it.to_string()),
            ("init".to_string(), a.init.display().to_string()),
            ("trained_by".to_string(), "sshface train".to_string()),
        ])
    };
    let n = anns.len();
    for it in start..a.iters {
        let t0 = Instant::now();
        let lr = if it >= a.step { a.lr * 0.1 } else { a.lr };
        let mut sum = StepLosses::default();
        let mut used = 0usize;
        for j in 0..a.iter_size {
            let visit = it * a.iter_size as u64 + j as u64;
            let (idx, flip) = data::sample(n, visit, a.recipe.seed, !a.no_flip);
            let img = match data::load_train_image(&a.images, &anns[idx], flip) {
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
                t.step = a.recipe.step(visit);
            }
            let s = scale_rule.factor(img.hw);
            let l = t.accumulate(&ctx, &img.rgb, img.hw, &img.boxes, s)?;
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
        t.update(&ctx, lr, a.iter_size)?;
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
            t.net.save(&ctx, &w, &meta(it + 1))?;
            t.net.save_solver(&ctx, &s, &meta(it + 1))?;
            say!(pb, "sshface: wrote {}", w.display());
        }
    }
    pb.finish_and_clear();
    Ok(ExitCode::SUCCESS)
}
