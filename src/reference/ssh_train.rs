//! CPU reference of one whole ssh-vgg16 training step (issue 12): forward, the six SSH losses with sampling "all"
//! (every labelled anchor is used, the `train-step --sampling all` hook) and the backward pass to the trainable
//! layers' weights and biases; [`sampled_losses`] gives the losses of the other samplings (forward only). The oracle
//! the GPU `train-step` is tested against; built from the reference ops (`conv2d`, `conv2d_grad`, `max_pool(_grad)`,
//! `relu_grad`, `softmax_loss`, `smooth_l1`, `upsample_bilinear`, `ohem`) and `train::targets`, sharing nothing with
//! the GPU network. Batch 1; activations f32, sums f64.
//!
//! Losses of module k (spec §9, py-faster-rcnn `anchor_target_layer` with uniform example weights), over the anchors
//! the sampling keeps ([`crate::reference::ohem`]; "all": every anchor labelled 0 or 1):
//! - classification: Caffe `SoftmaxWithLoss` (2-way, class-major: channel a is background, A + a face of anchor
//!   a) over the kept anchors, divided by their number (0 when there is none);
//! - regression: Fast R-CNN `SmoothL1Loss` with σ = 3 on `inside · (pred − target)` (inside = 1 on the four
//!   channels of a positive), times the outside weight 1/(number of kept anchors) on every kept anchor,
//!   summed (Caffe's divisor is the batch size, 1).

mod graph;

use crate::error::{Error, Result};
use crate::model::weights::WeightFile;
use crate::ops::ohem::{Normalise, Sampling};
use crate::ops::softmax2::ClassLayout;
use crate::reference::ohem::sample_anchors;
use crate::reference::smooth_l1::smooth_l1;
use crate::reference::softmax2::softmax2;
use crate::reference::softmax_loss::softmax_loss;
use crate::reference::CpuTensor;
use crate::train::targets::{anchor_targets, AnchorGrid};
use graph::Graph;

/// σ of SSH's Smooth-L1 loss (quadratic for |x| < 1/σ²).
pub const SIGMA: f64 = 3.0;

/// VGG-16 trunk (spec §3): the conv layers of each stage; a pool precedes every stage but the first.
const STAGES: [&[&str]; 5] = [
    &["conv1_1", "conv1_2"],
    &["conv2_1", "conv2_2"],
    &["conv3_1", "conv3_2", "conv3_3"],
    &["conv4_1", "conv4_2", "conv4_3"],
    &["conv5_1", "conv5_2", "conv5_3"],
];

/// The result of one reference training step.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainStepRef {
    /// Per module M1, M2, M3: (classification loss, bbox regression loss).
    pub losses: [[f32; 2]; 3],
    /// `<layer>.weight.grad` and `<layer>.bias.grad` of every trainable layer (checkpoint names, e.g.
    /// `m1.ssh_3x3.weight.grad`), with shape and values, in the spec's weight-table order.
    pub grads: Vec<(String, Vec<usize>, Vec<f32>)>,
}

/// One module's losses (f64) and the gradients of their sum w.r.t. its cls_score and bbox_pred outputs.
struct ModuleLoss {
    losses: [f64; 2],
    d_cls: CpuTensor,
    d_bbox: CpuTensor,
}

/// Losses of module `k` (0-based) for its raw heads `cls` [1, 2A, H, W] and `bbox` [1, 4A, H, W] on an input of
/// `image_hw` with GT boxes `gt`, over the anchors `sampling` keeps.
fn module_loss(
    k: usize,
    (cls, bbox): (&CpuTensor, &CpuTensor),
    image_hw: [usize; 2],
    gt: &[[f32; 4]],
    sampling: Sampling,
) -> ModuleLoss {
    let [_, _, h, w] = cls.nchw();
    let t = anchor_targets(&AnchorGrid::ssh(k, [h, w], image_hw), gt);
    // OHEM ranks by this pass's face probability; "all" keeps every labelled anchor with weight 1/count, which is
    // py-faster-rcnn's uniform outside weight (0 when nothing is labelled, keeping the loss 0).
    let prob = softmax2(cls, ClassLayout::ClassMajor);
    let dims = [t.labels.len() / (h * w), h, w];
    let s = sample_anchors(&t.labels, &prob.data, dims, sampling, Normalise::Sampled);
    let (cls_loss, _, d_cls) = softmax_loss(cls, &s.labels, ClassLayout::ClassMajor);
    let (bbox_loss, d) = smooth_l1(
        &bbox.data,
        &t.bbox_targets,
        &t.inside_weights,
        &s.outside_weights,
        1,
        SIGMA,
    );
    ModuleLoss {
        losses: [cls_loss, bbox_loss],
        d_cls,
        d_bbox: CpuTensor::new(&bbox.shape, d),
    }
}

/// Records the VGG-16 trunk on the tape's input; returns the node ids of conv4_3 and conv5_3.
fn trunk(g: &mut Graph) -> Result<[usize; 2]> {
    let mut t = Graph::INPUT;
    let mut conv4_3 = t;
    for (i, stage) in STAGES.iter().enumerate() {
        if i > 0 {
            t = g.pool(t);
        }
        for name in stage.iter() {
            t = g.conv(name, t, true)?;
        }
        if i == 3 {
            conv4_3 = t;
        }
    }
    Ok([conv4_3, t])
}

/// Records everything above the trunk (M1 fusion, pool6, the three modules) on the trunk outputs `conv4_3` and
/// `conv5_3`; returns the (cls_score, bbox_pred) node ids of M1–M3.
fn top(g: &mut Graph, conv4_3: usize, conv5_3: usize) -> Result<[[usize; 2]; 3]> {
    // M1 fusion (spec §3.1): conv5_128 upsampled by the fixed deconv, cropped to conv4_128, summed without ReLU.
    let c5 = g.conv("conv5_128", conv5_3, true)?;
    let c4 = g.conv("conv4_128", conv4_3, true)?;
    let hw4 = [g.out(c4).shape[2], g.out(c4).shape[3]];
    let up = g.up(c5, hw4);
    let fuse = g.add(up, c4);
    let fuse_final = g.conv("conv4_fuse_final", fuse, true)?;
    let pool6 = g.pool(conv5_3);
    let mut heads = [[0; 2]; 3];
    for (k, f) in [fuse_final, conv5_3, pool6].into_iter().enumerate() {
        let n = |s: &str| format!("m{}.{s}", k + 1);
        let c3 = g.conv(&n("ssh_3x3"), f, false)?;
        let d = g.conv(&n("ssh_dimred"), f, true)?;
        let c5 = g.conv(&n("ssh_5x5"), d, false)?;
        let c7_1 = g.conv(&n("ssh_7x7-1"), d, true)?;
        let c7 = g.conv(&n("ssh_7x7"), c7_1, false)?;
        // The ReLU comes after the concat (ssh_output_relu), not inside the branches.
        let out = g.concat_relu(&[c3, c5, c7]);
        heads[k] = [
            g.conv(&n("ssh_cls_score"), out, false)?,
            g.conv(&n("ssh_bbox_pred"), out, false)?,
        ];
    }
    Ok(heads)
}

/// `[H, W]` of a `[1, 3, H, W]` network input, or an error naming its shape.
fn input_hw(x: &CpuTensor) -> Result<[usize; 2]> {
    match x.shape[..] {
        [1, 3, h, w] if h > 0 && w > 0 => Ok([h, w]),
        _ => Err(Error::shape(
            "data",
            format!(
                "network input must be [1, 3, H, W] with H, W ≥ 1, found {:?}",
                x.shape
            ),
        )),
    }
}

/// The per-module losses and head gradients of a recorded tape with heads `heads`.
fn losses(
    g: &Graph,
    heads: &[[usize; 2]; 3],
    image_hw: [usize; 2],
    gt: &[[f32; 4]],
    sampling: Sampling,
) -> [ModuleLoss; 3] {
    let loss = |k: usize| {
        let [c, b] = heads[k];
        module_loss(k, (g.out(c), g.out(b)), image_hw, gt, sampling)
    };
    [loss(0), loss(1), loss(2)]
}

/// Sum of the six losses in f64, forward only: the function whose finite differences check [`train_step`].
/// Arguments as for [`train_step`].
pub fn total_loss(wf: &WeightFile, x: &CpuTensor, gt: &[[f32; 4]]) -> Result<f64> {
    let image_hw = input_hw(x)?;
    let mut g = Graph::new(wf, &|_| false, x.clone());
    let [c4, c5] = trunk(&mut g)?;
    total_loss_from_trunk(wf, g.out(c4), g.out(c5), image_hw, gt)
}

/// [`total_loss`] from given trunk outputs `conv4_3` and `conv5_3` (post-ReLU, [1, 512, L4 or L5, …]) of an
/// input of `image_hw`: runs only the layers above the trunk (fusion, pool6, modules), so finite differences of
/// those layers' weights need not rerun VGG-16. `wf` needs only those layers' tensors.
pub fn total_loss_from_trunk(
    wf: &WeightFile,
    conv4_3: &CpuTensor,
    conv5_3: &CpuTensor,
    image_hw: [usize; 2],
    gt: &[[f32; 4]],
) -> Result<f64> {
    for (name, t) in [("conv4_3", conv4_3), ("conv5_3", conv5_3)] {
        if t.shape.len() != 4 || t.shape[0] != 1 {
            let msg = format!("trunk output must be [1, C, H, W], found {:?}", t.shape);
            return Err(Error::shape(name, msg));
        }
    }
    let mut g = Graph::new(wf, &|_| false, conv4_3.clone());
    let c5 = g.input(conv5_3.clone());
    let heads = top(&mut g, Graph::INPUT, c5)?;
    Ok(losses(&g, &heads, image_hw, gt, Sampling::All)
        .iter()
        .flat_map(|m| m.losses)
        .sum())
}

/// The six losses per entry of `samplings` (normaliser [`Normalise::Sampled`]), all from ONE forward pass: what the
/// GPU step reports for the same sampling (a random one with its seed). Arguments as for [`train_step`].
pub fn sampled_losses(
    wf: &WeightFile,
    x: &CpuTensor,
    gt: &[[f32; 4]],
    samplings: &[Sampling],
) -> Result<Vec<[[f32; 2]; 3]>> {
    let image_hw = input_hw(x)?;
    for s in samplings {
        s.caps().map_err(|e| Error::shape("sampling", e))?;
    }
    let mut g = Graph::new(wf, &|_| false, x.clone());
    let [c4, c5] = trunk(&mut g)?;
    let heads = top(&mut g, c4, c5)?;
    let each =
        |&s: &Sampling| losses(&g, &heads, image_hw, gt, s).map(|m| m.losses.map(|v| v as f32));
    Ok(samplings.iter().map(each).collect())
}

/// One training step of ssh-vgg16 on `x` ([1, 3, H, W], BGR mean-subtracted, already resized) with GT boxes
/// `gt` (`[x1, y1, x2, y2]` in `x`'s pixels, e.g. from [`gt_boxes`](crate::train::targets::gt_boxes)):
/// the six losses and the gradients of their sum (loss weight 1 each) for the layers where `trainable(layer)`
/// (layer names as `conv3_1`, `m2.ssh_5x5`). The backward pass stops below the lowest trainable layer.
/// Errors name the tensor or size: a missing or misshapen weight, an input that is not [1, 3, H, W].
pub fn train_step(
    wf: &WeightFile,
    x: &CpuTensor,
    gt: &[[f32; 4]],
    trainable: &dyn Fn(&str) -> bool,
) -> Result<TrainStepRef> {
    let image_hw = input_hw(x)?;
    let mut g = Graph::new(wf, trainable, x.clone());
    let [c4, c5] = trunk(&mut g)?;
    let heads = top(&mut g, c4, c5)?;
    let losses = losses(&g, &heads, image_hw, gt, Sampling::All);
    let values = losses.each_ref().map(|m| m.losses.map(|v| v as f32));
    let seeds = heads
        .iter()
        .zip(losses)
        .flat_map(|(&[c, b], m)| [(c, m.d_cls), (b, m.d_bbox)])
        .collect();
    let mut grads = g.backward(seeds)?;
    // Weight-table order (then weight before bias) so that listings and comparisons are stable.
    let rank = |name: &str| {
        let layer = name.rsplitn(3, '.').nth(2).unwrap_or(name);
        let i = crate::convert::caffe::SSH_VGG16_LAYERS
            .iter()
            .position(|l| l.name == layer);
        (i, name.ends_with(".bias.grad"))
    };
    grads.sort_by_key(|(n, _, _)| rank(n));
    Ok(TrainStepRef {
        losses: values,
        grads,
    })
}
