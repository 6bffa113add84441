//! The training loop's engine: the network's parameters, a small cache of compiled steps (one per input size, face
//! count and sampling kind; a random-sampling seed is written per run, not compiled) and the update plan. The CLI
//! feeds it images; tests drive it directly.

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::model::ssh_vgg16::scale_for;
use crate::model::weights::WeightFile;
use crate::ops::sgd::HYPER_LEN;
use crate::train::net::{Freeze, Init, TrainNet};
use crate::train::step::{
    compile_step, compile_update, run_step, StepConfig, StepLosses, StepPlan, UpdatePlan,
};

/// How a training image is resized before the network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrainScale {
    /// The authors' rule: shortest side `short`, longest at most `long` (1200, 1600).
    Rule { short: f64, long: f64 },
    /// One fixed factor.
    Fixed(f64),
}

impl TrainScale {
    pub fn factor(self, hw: [usize; 2]) -> f64 {
        match self {
            TrainScale::Rule { short, long } => scale_for(hw, short, long),
            TrainScale::Fixed(s) => s,
        }
    }
}

impl Default for TrainScale {
    fn default() -> Self {
        TrainScale::Rule {
            short: 1200.0,
            long: 1600.0,
        }
    }
}

/// SGD hyper-parameters of the authors' solver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Solver {
    pub momentum: f32,
    pub weight_decay: f32,
}

impl Default for Solver {
    fn default() -> Self {
        Solver {
            momentum: 0.9,
            weight_decay: 5e-4,
        }
    }
}

/// Compiled steps kept for reuse: training at one size (synthetic sets, fixed crops) compiles once. WIDER's images
/// mostly differ in size, and a full-scale step's arena takes gigabytes, so the cache is also bounded in bytes.
const CACHE: usize = 8;
const CACHE_BYTES: u64 = 2 << 30;

/// What a compiled step is specialised for: original size, the resize factor's bits, the number of faces.
type StepKey = ([usize; 2], u64, usize);

pub struct Trainer {
    pub net: TrainNet,
    /// The sampling of the next [`Trainer::accumulate`]: changing only its random seed (per image visit) reuses the
    /// cached steps.
    pub step: StepConfig,
    pub solver: Solver,
    update: UpdatePlan,
    cache: Vec<(StepKey, StepPlan)>,
    compiled: usize,
}

impl Trainer {
    /// Uploads the parameters (see [`TrainNet::load`]) and compiles the update.
    pub fn new(
        ctx: &GpuContext,
        wf: &WeightFile,
        freeze: Freeze,
        step: StepConfig,
        init: Init,
    ) -> Result<Self> {
        let net = TrainNet::load(ctx, wf, freeze, init)?;
        let update = compile_update(ctx, &net)?;
        Ok(Trainer {
            net,
            step,
            solver: Solver::default(),
            update,
            cache: Vec::new(),
            compiled: 0,
        })
    }

    /// Forward and backward of one image (`rgb`: RGB8 `[H, W, 3]` of `hw`; `boxes`: `[x1, y1, x2, y2]` in its
    /// pixels) resized by `scale`; adds the gradients to the accumulators and returns the losses.
    pub fn accumulate(
        &mut self,
        ctx: &GpuContext,
        rgb: &[u8],
        hw: [usize; 2],
        boxes: &[[f32; 4]],
        scale: f64,
    ) -> Result<StepLosses> {
        if rgb.len() != hw[0] * hw[1] * 3 {
            return Err(Error::shape(
                "train.image",
                format!(
                    "{} bytes of RGB for a {}x{} image (expected {})",
                    rgb.len(),
                    hw[1],
                    hw[0],
                    hw[0] * hw[1] * 3
                ),
            ));
        }
        if let Some(b) = boxes
            .iter()
            .find(|b| !b.iter().all(|v| v.is_finite()) || b[2] < b[0] || b[3] < b[1])
        {
            return Err(Error::shape(
                "train.boxes",
                format!("box {b:?} is not [x1, y1, x2, y2] with finite x2 ≥ x1, y2 ≥ y1"),
            ));
        }
        let key = (hw, scale.to_bits(), boxes.len());
        // The sampling kind is baked into a plan, the random seed is not: a new seed per image visit reuses the plan.
        let kind = self.step.kind();
        let pos = match self
            .cache
            .iter()
            .position(|(k, p)| *k == key && p.config == kind)
        {
            Some(p) => p,
            None => {
                let cache = &mut self.cache;
                // Free the oldest steps' arenas until this one fits the budget beside the rest.
                let mut make_room = |need: u64| {
                    let held = |c: &Vec<(StepKey, StepPlan)>| -> u64 {
                        c.iter().map(|(_, p)| p.plan.arena_bytes()).sum()
                    };
                    while !cache.is_empty()
                        && (cache.len() >= CACHE || held(cache) + need > CACHE_BYTES)
                    {
                        cache.remove(0);
                    }
                };
                let sp = compile_step(
                    ctx,
                    &self.net,
                    (hw, scale, boxes.len()),
                    &self.step,
                    &mut make_room,
                )?;
                self.cache.push((key, sp));
                self.compiled += 1;
                self.cache.len() - 1
            }
        };
        let seed = self.step.sampling.seed();
        run_step(ctx, &self.cache[pos].1, rgb, boxes, seed)
    }

    /// How many steps [`Trainer::accumulate`] has compiled so far (a cache hit compiles none).
    pub fn steps_compiled(&self) -> usize {
        self.compiled
    }

    /// Bytes of GPU memory the trainer holds: the arenas of its cached steps and of the update (activations kept
    /// for the backward pass, targets, losses), plus every layer's parameters and, for trained layers, their
    /// gradient accumulators and momentum.
    pub fn gpu_memory_bytes(&self) -> u64 {
        let arenas: u64 = self.cache.iter().map(|(_, p)| p.plan.arena_bytes()).sum();
        let state: u64 = self
            .net
            .layers
            .iter()
            .map(|l| {
                let params = [Some(&l.conv.conv.weight), l.conv.conv.bias.as_ref()];
                let trained = l
                    .state
                    .iter()
                    .flat_map(|s| [&s.grad_w, &s.grad_b, &s.hist_w, &s.hist_b].map(Some));
                params
                    .into_iter()
                    .chain(trained)
                    .flatten()
                    .map(|w| w.buffer.size())
                    .sum::<u64>()
            })
            .sum();
        arenas + self.update.plan.arena_bytes() + state
    }

    /// One SGD update with learning rate `lr` from the gradients of `iter_size` accumulated images (Caffe scales
    /// them by 1 / iter_size), then zeroes the accumulators.
    pub fn update(&mut self, ctx: &GpuContext, lr: f32, iter_size: usize) -> Result<()> {
        if !(lr.is_finite() && lr >= 0.0) || iter_size == 0 {
            return Err(Error::Config(format!(
                "learning rate {lr} must be finite and ≥ 0, iter_size {iter_size} ≥ 1"
            )));
        }
        let hyper: [f32; HYPER_LEN] = [
            lr,
            self.solver.momentum,
            self.solver.weight_decay,
            1.0 / iter_size as f32,
        ];
        self.update.plan.write(ctx, self.update.hyper, &hyper)?;
        self.update.plan.run(ctx, &[])?;
        Ok(())
    }
}
