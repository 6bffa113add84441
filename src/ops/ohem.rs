//! Anchor sampling of SSH training on the GPU (`shaders/ohem.wgsl`; CPU reference [`crate::reference::ohem`]):
//! which labelled anchors of one module of one image enter the losses, and the outside weights that normalise
//! the box regression. py-faster-rcnn's `anchor_target_layer` rules with the SSH authors' OHEM:
//!
//! - positives (label 1): at most `num_fg = floor(fg_fraction · batch)` are kept, the others become −1;
//! - negatives (label 0): at most `batch − positives kept` are kept, the others become −1;
//! - [`Sampling::Ohem`] keeps the positives of LOWEST face probability (hard positives) and the negatives of
//!   HIGHEST face probability (hard negatives); [`Sampling::Random`] a pseudo-random subset from a seed;
//!   [`Sampling::All`] every labelled anchor.
//!
//! The seed is not compiled into the step: the op reads it from a `[1]` u32 input tensor that the host writes before
//! each run, so a training loop that draws a new seed per image visit reuses one plan per input size.
//!
//! Ties (equal probabilities, −0 equal to +0) go to the lower flat anchor index `a·H·W + y·W + x` (the `[A, H, W]`
//! layout); a NaN probability ranks after every number, so such an anchor is kept last in both classes. Random keys
//! are `pcg(index + pcg(seed))` ([`crate::reference::ohem::random_key`]), a bijection of the index: no ties, and the
//! smallest keys are a pseudo-random subset. Labels other than 0 and 1 count as ignored and are written −1.
//! Everything runs in one workgroup on the GPU (the number kept is data dependent; nothing is read back).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{Graph, StepDesc, TensorId};
use crate::ops::Shader;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    /// A·H·W.
    pub len: u32,
    /// H·W.
    pub hw: u32,
    /// Most positives kept.
    pub num_fg: u32,
    /// Most positives + negatives kept.
    pub batch: u32,
    /// 1: random keys from the seed tensor, 0: probability keys.
    pub random: u32,
    /// 0: [`Normalise::Sampled`], 1: [`Normalise::Positives`].
    pub norm: u32,
    pub _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

pub static SHADER: Shader = crate::shader!("ohem", Params);

/// How the anchors entering the losses are chosen among the labelled ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// Online hard example mining (SSH: `batch` 256, `fg_fraction` 0.25): hard positives and hard negatives.
    Ohem { batch: u32, fg_fraction: f32 },
    /// Every labelled anchor; labels unchanged.
    All,
    /// py-faster-rcnn without OHEM: the same counts as `Ohem`, a uniformly random subset of each class, reproducible
    /// from `seed`. The GPU op does not bake `seed` in: it reads the seed tensor the host writes (see
    /// [`Sampling::seed`]), so plans are specialised for [`Sampling::kind`] only.
    Random {
        batch: u32,
        fg_fraction: f32,
        seed: u32,
    },
}

impl Sampling {
    /// The SSH authors' setting.
    pub const SSH: Sampling = Sampling::Ohem {
        batch: 256,
        fg_fraction: 0.25,
    };

    /// `[num_fg, batch]`: the most positives and the most anchors kept (`u32::MAX` for [`Sampling::All`]), with
    /// `num_fg = floor(fg_fraction · batch)` in f64 as py-faster-rcnn's `int()`; an error for `batch` 0 or a
    /// `fg_fraction` outside [0, 1].
    pub fn caps(self) -> std::result::Result<[u32; 2], String> {
        let (batch, fg) = match self {
            Sampling::All => return Ok([u32::MAX; 2]),
            Sampling::Ohem { batch, fg_fraction } => (batch, fg_fraction),
            Sampling::Random {
                batch, fg_fraction, ..
            } => (batch, fg_fraction),
        };
        if batch == 0 || !(0.0..=1.0).contains(&fg) {
            return Err(format!(
                "sampling needs batch ≥ 1 and fg_fraction in [0, 1], found batch {batch}, fg_fraction {fg}"
            ));
        }
        Ok([(fg as f64 * batch as f64).floor() as u32, batch])
    }

    /// The seed the host writes into the op's seed tensor for this sampling (0 where it is not random).
    pub fn seed(self) -> u32 {
        match self {
            Sampling::Random { seed, .. } => seed,
            _ => 0,
        }
    }

    /// What a compiled op depends on: the kind and its counts, with a random seed set to 0 (a run-time input).
    pub fn kind(self) -> Sampling {
        match self {
            Sampling::Random {
                batch, fg_fraction, ..
            } => Sampling::Random {
                batch,
                fg_fraction,
                seed: 0,
            },
            s => s,
        }
    }
}

/// The box-regression normaliser carried by the outside weights (smooth L1 then divides by the batch size, 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalise {
    /// `1 / num_examples`, the number of sampled anchors (positives + negatives kept): the code's "1/256"
    /// (py-faster-rcnn with `RPN_POSITIVE_WEIGHT = −1`), also the count softmax loss normalises by.
    Sampled,
    /// `1 / positives kept`: the paper's `1/N_k^r`, the anchors that take part in the regression.
    Positives,
}

/// Output tensors of [`sample_anchors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampled {
    /// The shape of the input labels (`[1, A, H, W]` or `[A, H, W]`): 1 or 0 for sampled anchors, −1 elsewhere.
    pub labels: TensorId,
    /// `[1, 4A, H, W]` (`[4A, H, W]` for 3-D labels): the normaliser of [`Normalise`] on the four channels
    /// `4a..4a + 4` of every sampled anchor (negatives too, as py-faster-rcnn; their inside weights are 0), 0
    /// elsewhere and everywhere when the normaliser's count is 0.
    pub outside_weights: TensorId,
    /// `[4]` u32: positives kept, negatives kept, positives available, negatives available.
    pub stats: TensorId,
}

/// `[A, H, W]` of a tensor `[A, H, W]` or `[1, A, H, W]` with A, H, W ≥ 1.
fn anchor_dims(shape: &[usize]) -> Option<[usize; 3]> {
    let s = match shape {
        [1, a, h, w] | [a, h, w] => [*a, *h, *w],
        _ => return None,
    };
    s.iter().all(|&d| d > 0).then_some(s)
}

/// Samples the anchors of one module of one image: `labels` from
/// [`anchor_targets`](crate::ops::anchor_targets::anchor_targets) (`[1, A, H, W]`, or `[A, H, W]`), `face_prob`
/// from [`softmax2`](crate::ops::softmax2::softmax2) of the current forward pass (`[1, A, H, W]` or `[A, H, W]`
/// of the same A, H, W; no gradient flows through it), both f32. `seed`: a `[1]` tensor of 4-byte elements holding
/// the u32 seed of [`Sampling::Random`] at run time (write [`Sampling::seed`] into it before each run; the seed inside
/// `sampling` is not used here); the other samplings never read it. See the module doc for the rules.
pub fn sample_anchors(
    g: &mut Graph,
    label: &str,
    labels: TensorId,
    face_prob: TensorId,
    seed: TensorId,
    sampling: Sampling,
    norm: Normalise,
) -> Result<Sampled> {
    let desc = |t: TensorId| format!("'{}' {:?}", g.info(t).name, g.shape(t));
    let dims = anchor_dims(g.shape(labels));
    let Some([a, h, w]) = dims else {
        let msg = "must be [1, A, H, W] or [A, H, W] with no zero size";
        return Err(Error::shape(
            label,
            format!("labels {} {msg}", desc(labels)),
        ));
    };
    if anchor_dims(g.shape(face_prob)) != dims {
        return Err(Error::shape(
            label,
            format!(
                "face probabilities {} must be [1, {a}, {h}, {w}] (or [{a}, {h}, {w}]) as labels {}",
                desc(face_prob),
                desc(labels)
            ),
        ));
    }
    crate::ops::relu_grad::f32_maps(g, label, &[labels])?;
    crate::ops::relu_grad::f32_maps(g, label, &[face_prob])?;
    if g.shape(seed) != [1] || g.dtype(seed).size() != 4 {
        return Err(Error::shape(
            label,
            format!(
                "seed {} {:?} must be one u32 ([1], 4-byte elements)",
                desc(seed),
                g.dtype(seed)
            ),
        ));
    }
    let [num_fg, batch] = sampling.caps().map_err(|e| Error::shape(label, e))?;
    let len = a * h * w;
    if len >= u32::MAX as usize {
        return Err(Error::shape(
            label,
            format!("{len} anchors do not fit the shader's u32 indices"),
        ));
    }
    let params = Params {
        len: len as u32,
        hw: (h * w) as u32,
        num_fg,
        batch,
        random: matches!(sampling, Sampling::Random { .. }) as u32,
        norm: match norm {
            Normalise::Sampled => 0,
            Normalise::Positives => 1,
        },
        _pad: [0; 2],
    };
    let in_shape = g.shape(labels).to_vec();
    let out_labels = g.tensor(&format!("{label}.labels"), &in_shape)?;
    // The leading [1] of 4-D labels, if any, then [4A, H, W].
    let weights_shape = [&in_shape[..in_shape.len() - 3], &[4 * a, h, w]].concat();
    let outside_weights = g.tensor(&format!("{label}.outside_weights"), &weights_shape)?;
    let stats = g.tensor(&format!("{label}.stats"), &[4])?;
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "ohem",
        constants: vec![],
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![
            labels.into(),
            face_prob.into(),
            out_labels.into(),
            outside_weights.into(),
            stats.into(),
            seed.into(),
        ],
        // One workgroup: the selection needs every anchor of the call.
        workgroups: [1, 1, 1],
        flops: 0,
    });
    Ok(Sampled {
        labels: out_labels,
        outside_weights,
        stats,
    })
}
