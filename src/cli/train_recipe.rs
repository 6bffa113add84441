//! The training recipe's options shared by `train`, `train-step` and `bench --train`, and the JSON both training
//! commands report per step.

use clap::{Args, ValueEnum};
use sshface::model::weights::WeightFile;
use sshface::ops::ohem::{Normalise, Sampling};
use sshface::train::net::{Freeze, Init, NewLayers};
use sshface::train::step::{StepConfig, StepLosses};
use sshface::train::trainer::Trainer;
use sshface::GpuContext;

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
    /// The GEMM tier of the forward convolutions: `bench --train --gemm`; `train` keeps `Auto`.
    #[arg(skip)]
    pub(super) gemm: sshface::GemmTier,
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
    pub(super) seed: u64,
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
    pub(super) fn step(&self, salt: u64) -> StepConfig {
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
            gemm: self.gemm,
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

pub(super) fn losses_json(l: &StepLosses) -> serde_json::Value {
    let m = |k: usize| serde_json::json!({"cls": l.cls[k], "bbox": l.bbox[k], "positives": l.sampled[k][0], "negatives": l.sampled[k][1]});
    serde_json::json!({"m1": m(0), "m2": m(1), "m3": m(2), "total": l.total()})
}

/// Wall time of a step (image loading and, on a new input size, building its plan included) and the work it did.
pub(super) fn timing(secs: f64, flops: u64) -> serde_json::Value {
    serde_json::json!({"seconds": secs, "gflop": flops as f64 / 1e9, "gflop_per_s": flops as f64 / 1e9 / secs})
}
