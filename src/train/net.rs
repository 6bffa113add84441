//! The parameters of ssh-vgg16 as training holds them: every layer's weight and bias in GPU buffers that SGD updates
//! in place, and for each trainable layer its gradient accumulators and momentum, with Caffe's multipliers.

use std::collections::HashMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::convert::caffe::SSH_VGG16_LAYERS;
use crate::convert::{write_safetensors, NamedTensor};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Weight};
use crate::model::blocks::ConvLayer;
use crate::model::weights::WeightFile;
use crate::ops::conv2d::Conv2d;
use crate::ops::sgd::Multipliers;
use crate::ops::Activation;

/// Which layers training leaves unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Freeze {
    /// The authors' recipe: conv1_x and conv2_x frozen, everything from conv3_1 on trained.
    #[default]
    Caffe,
    /// The whole VGG-16 backbone frozen: only the M1 fusion, the three modules and their heads learn.
    Backbone,
    /// Every layer trained.
    Nothing,
}

impl Freeze {
    /// Whether layer `name` (e.g. `conv3_1`, `m2.ssh_5x5`) is trained.
    pub fn trains(self, name: &str) -> bool {
        match self {
            Freeze::Caffe => !(name.starts_with("conv1_") || name.starts_with("conv2_")),
            Freeze::Backbone => !is_vgg(name),
            Freeze::Nothing => true,
        }
    }
}

/// conv1_1 … conv5_3: the layers an ImageNet VGG-16 initialises.
fn is_vgg(name: &str) -> bool {
    name.starts_with("conv") && !name.contains("_128") && !name.starts_with("conv4_fuse")
}

/// torchvision's `vgg16().features` index of each VGG conv, for `--init` files in that layout.
const TORCHVISION: [(&str, usize); 13] = [
    ("conv1_1", 0),
    ("conv1_2", 2),
    ("conv2_1", 5),
    ("conv2_2", 7),
    ("conv3_1", 10),
    ("conv3_2", 12),
    ("conv3_3", 14),
    ("conv4_1", 17),
    ("conv4_2", 19),
    ("conv4_3", 21),
    ("conv5_1", 24),
    ("conv5_2", 26),
    ("conv5_3", 28),
];

/// How the layers an ImageNet VGG-16 lacks (fusion, modules, heads) are initialised.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum NewLayers {
    /// The recipe: weights N(0, 0.01), bias 0.
    #[default]
    Gaussian,
    /// He (MSRA): weights N(0, 2 / fan_in), bias 0. Keeps the signal's scale through the new stack, so short
    /// trainings (fine-tuning on a small set, the convergence test) learn faster than from N(0, 0.01).
    He,
}

/// The seed and rule of the initialisation of new layers.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Init {
    pub seed: u64,
    pub new_layers: NewLayers,
}

impl Init {
    /// The recipe's N(0, 0.01) from `seed`.
    pub fn seed(seed: u64) -> Self {
        Init {
            seed,
            new_layers: NewLayers::Gaussian,
        }
    }
}

/// Gradient accumulators and momentum of one trainable layer.
#[derive(Clone, Debug)]
pub struct LayerState {
    pub grad_w: Weight,
    pub grad_b: Weight,
    pub hist_w: Weight,
    pub hist_b: Weight,
    pub mult_w: Multipliers,
    pub mult_b: Multipliers,
}

/// One conv layer: the forward conv over the live parameter buffers, and its training state when trained.
#[derive(Clone, Debug)]
pub struct Layer {
    pub conv: ConvLayer,
    pub state: Option<LayerState>,
}

/// The 37 conv layers of ssh-vgg16 in the spec's table order.
pub struct TrainNet {
    pub layers: Vec<Layer>,
    /// What `load` noticed (layers initialised at random, names mapped), for the log.
    pub notes: Vec<String>,
}

/// Caffe's multipliers: weights lr ×1 decay ×1; biases lr ×2, decay ×0 in the SSH modules and ×1 elsewhere.
pub fn multipliers(layer: &str) -> (Multipliers, Multipliers) {
    let module = layer.starts_with('m');
    (
        Multipliers {
            lr: 1.0,
            decay: 1.0,
        },
        Multipliers {
            lr: 2.0,
            decay: if module { 0.0 } else { 1.0 },
        },
    )
}

/// Where each layer's initial values come from.
enum Source<'a> {
    File(&'a [f32], &'a [f32]),
    Random,
}

impl TrainNet {
    /// Uploads the parameters from `wf`: a full ssh-vgg16 checkpoint, or an ImageNet VGG-16 (our names, or
    /// torchvision's `features.N.*`) whose missing new layers (fusion, modules, heads) are initialised N(0, 0.01)
    /// with zero bias from `seed`. A missing or mis-shaped VGG layer is an error naming it; tensors of no layer
    /// (e.g. `fc6`) are ignored and listed in `notes`. [`NewLayers::He`] replaces N(0, 0.01) by He's rule.
    pub fn load(ctx: &GpuContext, wf: &WeightFile, freeze: Freeze, init: Init) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(init.seed);
        let mut notes = Vec::new();
        let mut used = std::collections::HashSet::new();
        let mut layers = Vec::with_capacity(SSH_VGG16_LAYERS.len());
        let torch = |name: &str| {
            TORCHVISION
                .iter()
                .find(|t| t.0 == name)
                .map(|t| format!("features.{}", t.1))
        };
        let mut random = Vec::new();
        for l in SSH_VGG16_LAYERS.iter() {
            let shape = l.weight;
            let alias = torch(l.name).filter(|t| wf.shape(&format!("{t}.weight")).is_some());
            let key = match (&alias, wf.shape(&format!("{}.weight", l.name))) {
                (Some(t), None) => t.clone(),
                _ => l.name.to_string(),
            };
            let src = match wf.shape(&format!("{key}.weight")) {
                Some(_) => {
                    let w = wf.get(&format!("{key}.weight"), &shape)?;
                    let b = wf.get(&format!("{key}.bias"), &[shape[0]])?;
                    used.insert(format!("{key}.weight"));
                    used.insert(format!("{key}.bias"));
                    if key != l.name {
                        notes.push(format!("{key}.* → {}", l.name));
                    }
                    Source::File(w, b)
                }
                None if is_vgg(l.name) => {
                    return Err(Error::Weights {
                        file: wf.label().to_string(),
                        msg: format!(
                            "backbone layer {} is missing: --init needs an ImageNet VGG-16 ({0}.weight {shape:?}, or torchvision's features.N.weight) or an ssh-vgg16 checkpoint",
                            l.name
                        ),
                    });
                }
                None => {
                    random.push(l.name);
                    Source::Random
                }
            };
            let n: usize = shape.iter().product();
            let std = match init.new_layers {
                NewLayers::Gaussian => 0.01,
                NewLayers::He => (2.0 / (shape[1] * shape[2] * shape[3]) as f32).sqrt(),
            };
            let (w, b): (Vec<f32>, Vec<f32>) = match src {
                Source::File(w, b) => (w.to_vec(), b.to_vec()),
                Source::Random => (
                    (0..n).map(|_| normal(&mut rng) * std).collect(),
                    vec![0.0; shape[0]],
                ),
            };
            layers.push(Self::upload(ctx, l.name, shape, &w, &b, freeze)?);
        }
        if !random.is_empty() {
            notes.push(format!(
                "initialised {}, bias 0: {}",
                match init.new_layers {
                    NewLayers::Gaussian => "N(0, 0.01)",
                    NewLayers::He => "N(0, 2/fan_in) (He)",
                },
                random.join(", ")
            ));
        }
        let mut unused: Vec<String> = wf
            .names()
            .into_iter()
            .filter(|n| !used.contains(n))
            .collect();
        unused.sort();
        if !unused.is_empty() {
            notes.push(format!(
                "ignored tensors of no layer: {}",
                unused.join(", ")
            ));
        }
        Ok(TrainNet { layers, notes })
    }

    fn upload(
        ctx: &GpuContext,
        name: &str,
        shape: [usize; 4],
        w: &[f32],
        b: &[f32],
        freeze: Freeze,
    ) -> Result<Layer> {
        let weight = ctx.trainable(&format!("{name}.weight"), w, &shape)?;
        let bias = ctx.trainable(&format!("{name}.bias"), b, &[shape[0]])?;
        let head = name.ends_with("cls_score") || name.ends_with("bbox_pred");
        let pad = shape[2] / 2;
        let conv = Conv2d {
            weight: weight.clone(),
            bias: Some(bias.clone()),
            stride: [1, 1],
            pad: [pad; 4],
            dilation: [1, 1],
            groups: 1,
            act: if head {
                Activation::None
            } else {
                Activation::Relu
            },
        };
        let state = match freeze.trains(name) {
            false => None,
            true => {
                let zeros = |suffix: &str, shape: &[usize]| {
                    let n = shape.iter().product::<usize>();
                    ctx.trainable(&format!("{name}.{suffix}"), &vec![0.0; n], shape)
                };
                let (mult_w, mult_b) = multipliers(name);
                Some(LayerState {
                    grad_w: zeros("weight.grad", &shape)?,
                    grad_b: zeros("bias.grad", &[shape[0]])?,
                    hist_w: zeros("weight.momentum", &shape)?,
                    hist_b: zeros("bias.momentum", &[shape[0]])?,
                    mult_w,
                    mult_b,
                })
            }
        };
        Ok(Layer {
            conv: ConvLayer {
                name: name.to_string(),
                conv,
            },
            state,
        })
    }

    /// The layer named `name`; the names are the spec's, so a miss is a bug of the caller.
    pub fn layer(&self, name: &str) -> &Layer {
        self.layers
            .iter()
            .find(|l| l.conv.name == name)
            .unwrap_or_else(|| panic!("ssh-vgg16 has no layer {name}"))
    }

    /// The 74 parameters, as `detect --weights` reads them.
    pub fn parameters(&self, ctx: &GpuContext) -> Result<Vec<NamedTensor>> {
        let mut out = Vec::new();
        for l in &self.layers {
            let b = l.conv.conv.bias.as_ref().expect("every layer has a bias");
            for w in [&l.conv.conv.weight, b] {
                out.push((w.name.clone(), w.shape.clone(), ctx.read_weight(w)?));
            }
        }
        Ok(out)
    }

    /// Accumulated gradients of the trainable parameters, named `<parameter>.grad`.
    pub fn gradients(&self, ctx: &GpuContext) -> Result<Vec<NamedTensor>> {
        self.read_state(ctx, |s| [&s.grad_w, &s.grad_b])
    }

    /// Momentum of the trainable parameters, named `<parameter>.momentum`.
    pub fn momentum(&self, ctx: &GpuContext) -> Result<Vec<NamedTensor>> {
        self.read_state(ctx, |s| [&s.hist_w, &s.hist_b])
    }

    fn read_state(
        &self,
        ctx: &GpuContext,
        pick: impl Fn(&LayerState) -> [&Weight; 2],
    ) -> Result<Vec<NamedTensor>> {
        let mut out = Vec::new();
        for s in self.layers.iter().filter_map(|l| l.state.as_ref()) {
            for w in pick(s) {
                out.push((w.name.clone(), w.shape.clone(), ctx.read_weight(w)?));
            }
        }
        Ok(out)
    }

    /// Zeroes every gradient accumulator.
    pub fn zero_gradients(&self, ctx: &GpuContext) -> Result<()> {
        for s in self.layers.iter().filter_map(|l| l.state.as_ref()) {
            for w in [&s.grad_w, &s.grad_b] {
                ctx.write_weight(w, &vec![0.0; w.len()])?;
            }
        }
        Ok(())
    }

    /// Restores the momentum saved by [`TrainNet::save_solver`]; every trainable parameter must be there.
    pub fn load_momentum(&self, ctx: &GpuContext, wf: &WeightFile) -> Result<()> {
        for s in self.layers.iter().filter_map(|l| l.state.as_ref()) {
            for w in [&s.hist_w, &s.hist_b] {
                ctx.write_weight(w, wf.get(&w.name, &w.shape)?)?;
            }
        }
        Ok(())
    }

    /// Writes the parameters as a safetensors checkpoint `detect --weights` reads (atomically).
    pub fn save(
        &self,
        ctx: &GpuContext,
        path: &Path,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        write_safetensors(path, &self.parameters(ctx)?, metadata)
    }

    /// Writes the solver state (momentum) beside a checkpoint, for `--resume`.
    pub fn save_solver(
        &self,
        ctx: &GpuContext,
        path: &Path,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        write_safetensors(path, &self.momentum(ctx)?, metadata)
    }
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}
