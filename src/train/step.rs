//! One training step of ssh-vgg16 as one GPU plan: preprocessing, the forward pass with its activations kept,
//! per module the anchor targets, the sampling (OHEM, all, random), both losses, and the backward pass that adds
//! every trained parameter's gradient to its accumulator. The SGD update is a separate, size-independent plan.

use crate::error::{Error, Result};
use crate::gpu::GemmTier;
use crate::gpu::{DType, GpuContext, Graph, Plan, TensorId};
use crate::model::ssh_vgg16::POOL;
use crate::model::strips::{io, run_stage, ChainLayer, Map, Stage};
use crate::ops::anchor_targets::anchor_targets;
use crate::ops::ohem::{sample_anchors, Normalise, Sampling};
use crate::ops::preprocess::{resized_size, Preprocess};
use crate::ops::sgd::{sgd, HYPER_LEN};
use crate::ops::smooth_l1::{smooth_l1, SSH_SIGMA};
use crate::ops::softmax2::{softmax2, ClassLayout};
use crate::ops::softmax_loss::softmax_loss;
use crate::train::net::TrainNet;
use crate::train::tape::{Node, Tape};
use crate::train::targets::AnchorGrid;

/// How the anchors that enter the losses are chosen, and what normalises the box loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepConfig {
    pub sampling: Sampling,
    pub normalise: Normalise,
    /// The register-tiled GEMM of the forward convolutions (the wide tier repacks the trainable weights in each
    /// step, `ops::pack_kmajor`); the backward kernels are the same either way.
    pub gemm: GemmTier,
}

impl StepConfig {
    /// What a compiled step is specialised for: everything but the random-sampling seed, which [`run_step`] writes.
    pub fn kind(&self) -> StepConfig {
        StepConfig {
            sampling: self.sampling.kind(),
            ..*self
        }
    }
}

/// The tensors of a compiled step the host writes and reads.
pub struct StepPlan {
    pub plan: Plan,
    /// Packed RGB8 words of the original image.
    pub image: TensorId,
    /// `[max(1, G), 4]` GT boxes in network-input pixels.
    pub gt: TensorId,
    /// `[1]` u32: the random-sampling seed of the run (read by the three modules' sampling).
    pub seed: TensorId,
    pub num_gt: usize,
    /// Per module: softmax loss `[2]` (loss, count) and box loss `[1]`.
    pub losses: [(TensorId, TensorId); 3],
    /// Per module: sampling stats `[4]` (positives kept, negatives kept, positives, negatives).
    pub samples: [TensorId; 3],
    /// Network input `[H', W']` and the resize factor.
    pub input_hw: [usize; 2],
    pub scale: f64,
    /// Floating-point operations of one run (forward, losses, backward; a multiply-add counts 2).
    pub flops: u64,
    /// The sampling kind and normaliser baked into the plan's steps ([`StepConfig::kind`]: no seed).
    pub config: StepConfig,
}

/// Losses of one step, per module: (classification, box regression), and the anchors used.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepLosses {
    pub cls: [f32; 3],
    pub bbox: [f32; 3],
    /// Per module: (positives, negatives) that entered the losses.
    pub sampled: [[u32; 2]; 3],
    /// Floating-point operations of the step (see [`StepPlan::flops`]).
    pub flops: u64,
}

impl StepLosses {
    pub fn total(&self) -> f32 {
        self.cls.iter().chain(&self.bbox).sum()
    }
}

/// Builds and compiles the step for an image of `hw` resized by `scale` with `num_gt` faces. `make_room` is told
/// the bytes the step's arena will take before it is allocated (a cache of earlier steps can free theirs first).
pub fn compile_step(
    ctx: &GpuContext,
    net: &TrainNet,
    (hw, scale, num_gt): ([usize; 2], f64, usize),
    cfg: &StepConfig,
    make_room: &mut dyn FnMut(u64),
) -> Result<StepPlan> {
    let limit = ctx.max_binding();
    let mut g = Graph::new().with_big_tiles(cfg.gemm.wide_on(ctx.info.device_type));
    let r = resized_size(hw, scale)?;
    let words = (hw[0] * hw[1] * 3).div_ceil(4);
    if words as u64 * 4 > limit {
        return Err(Error::shape(
            "train.image",
            format!(
                "a {}x{} training image ({} bytes of RGB) exceeds the device's largest binding of {limit} bytes",
                hw[1],
                hw[0],
                words * 4
            ),
        ));
    }
    let image = g.input("image.rgb8", &[words])?;
    let gt = g.input("gt_boxes", &[num_gt.max(1), 4])?;
    let seed = g.input("sampling.seed", &[1])?;
    let x = io::canvas(&mut g, "input", [1, 3, r[0], r[1]], DType::F32, limit)?;
    let mut packed = vec![(0, image)];
    io::preprocess_map(
        &mut g,
        "preprocess",
        "image.rgb8",
        &mut packed,
        &x,
        0,
        &Preprocess::ssh(hw, scale)?,
    )?;
    let mut tape = Tape::new();
    let heads = forward(&mut g, &mut tape, net, &x, limit)?;
    let mut losses = Vec::new();
    let mut samples = Vec::new();
    for (k, &(cls, bbox)) in heads.iter().enumerate() {
        let mk = format!("m{}", k + 1);
        let [_, _, h, w] = tape.shape(cls);
        let grid = AnchorGrid::ssh(k, [h, w], r);
        let t = anchor_targets(&mut g, &format!("{mk}.anchor_targets"), gt, num_gt, &grid)?;
        let prob = softmax2(
            &mut g,
            &format!("{mk}.cls_prob"),
            tape.id(cls),
            ClassLayout::ClassMajor,
        )?;
        let s = sample_anchors(
            &mut g,
            &format!("{mk}.sampling"),
            t.labels,
            prob,
            seed,
            cfg.sampling,
            cfg.normalise,
        )?;
        let cl = softmax_loss(
            &mut g,
            &format!("{mk}.loss_cls"),
            tape.id(cls),
            s.labels,
            ClassLayout::ClassMajor,
        )?;
        let inputs = [
            tape.id(bbox),
            t.bbox_targets,
            t.inside_weights,
            s.outside_weights,
        ];
        let bl = smooth_l1(&mut g, &format!("{mk}.loss_bbox"), inputs, SSH_SIGMA)?;
        tape.seed(&mut g, cls, cl.grad)?;
        tape.seed(&mut g, bbox, bl.grad)?;
        for id in [cl.stats, bl.loss, s.stats] {
            g.mark_output(id);
        }
        losses.push((cl.stats, bl.loss));
        samples.push(s.stats);
    }
    tape.backward(&mut g)?;
    let flops = g.steps().iter().map(|s| s.flops).sum();
    make_room(g.arena_bytes());
    let plan = g.compile(ctx)?;
    Ok(StepPlan {
        plan,
        image,
        gt,
        seed,
        num_gt,
        losses: [losses[0], losses[1], losses[2]],
        samples: [samples[0], samples[1], samples[2]],
        input_hw: r,
        scale,
        flops,
        config: cfg.kind(),
    })
}

/// The forward pass on the preprocessed input `x`; returns per module its (cls, bbox) head nodes.
///
/// conv1_x and conv2_x run as one stage in row strips when they are all frozen (their activations are then not
/// kept: nothing flows back into them), so full-size training images fit; everything from conv3_1 on is recorded.
fn forward<'a>(
    g: &mut Graph,
    tape: &mut Tape<'a>,
    net: &'a TrainNet,
    x: &Map,
    limit: u64,
) -> Result<[(Node, Node); 3]> {
    let l = |n: &str| net.layer(n);
    let front = ["conv1_1", "conv1_2", "conv2_1", "conv2_2"];
    let p2 = if front.iter().all(|n| l(n).state.is_none()) {
        let c = |n| ChainLayer::Conv(&l(n).conv);
        let layers = vec![
            c("conv1_1"),
            c("conv1_2"),
            ChainLayer::Pool("pool1", POOL),
            c("conv2_1"),
            c("conv2_2"),
            ChainLayer::Pool("pool2", POOL),
        ];
        let m = run_stage(g, &Stage::chain(layers, None), x, limit)?;
        let id = m.joined(g)?;
        tape.leaf(g, id)?
    } else {
        let joined = x.joined(g)?;
        let input = tape.leaf(g, joined)?;
        let t = tape.conv(g, l("conv1_1"), input)?;
        let t = tape.conv(g, l("conv1_2"), t)?;
        let t = tape.pool(g, "pool1", t, POOL)?;
        let t = tape.conv(g, l("conv2_1"), t)?;
        let t = tape.conv(g, l("conv2_2"), t)?;
        tape.pool(g, "pool2", t, POOL)?
    };
    let mut t = p2;
    for n in ["conv3_1", "conv3_2", "conv3_3"] {
        t = tape.conv(g, l(n), t)?;
    }
    t = tape.pool(g, "pool3", t, POOL)?;
    for n in ["conv4_1", "conv4_2", "conv4_3"] {
        t = tape.conv(g, l(n), t)?;
    }
    let conv4_3 = t;
    t = tape.pool(g, "pool4", t, POOL)?;
    for n in ["conv5_1", "conv5_2", "conv5_3"] {
        t = tape.conv(g, l(n), t)?;
    }
    let conv5_3 = t;
    let c5 = tape.conv(g, l("conv5_128"), conv5_3)?;
    let c4 = tape.conv(g, l("conv4_128"), conv4_3)?;
    let [_, _, h4, w4] = tape.shape(c4);
    let up = tape.upsample(g, "conv5_128_up", c5, [h4, w4])?;
    let fuse = tape.add(g, "conv4_fuse", up, c4)?;
    let fuse_final = tape.conv(g, l("conv4_fuse_final"), fuse)?;
    let pool6 = tape.pool(g, "pool6", conv5_3, POOL)?;
    let inputs = [fuse_final, conv5_3, pool6];
    let mut heads = Vec::new();
    for (k, &f) in inputs.iter().enumerate() {
        let p = |s: &str| l(&format!("m{}.{s}", k + 1));
        let c0 = p("ssh_3x3").conv.c_out();
        let c1 = c0 + p("ssh_5x5").conv.c_out();
        let c = c1 + p("ssh_7x7").conv.c_out();
        let [n, _, h, w] = tape.shape(f);
        let out = tape.concat(g, &format!("m{}.ssh_output", k + 1), [n, c, h, w])?;
        tape.conv_into(g, p("ssh_3x3"), f, out, 0)?;
        let dimred = tape.conv(g, p("ssh_dimred"), f)?;
        tape.conv_into(g, p("ssh_5x5"), dimred, out, c0)?;
        let c71 = tape.conv(g, p("ssh_7x7-1"), dimred)?;
        tape.conv_into(g, p("ssh_7x7"), c71, out, c1)?;
        heads.push((
            tape.conv(g, p("ssh_cls_score"), out)?,
            tape.conv(g, p("ssh_bbox_pred"), out)?,
        ));
    }
    Ok([heads[0], heads[1], heads[2]])
}

/// The SGD update of every trained parameter from its accumulated gradient, which it then zeroes.
pub struct UpdatePlan {
    pub plan: Plan,
    /// `[lr, momentum, weight_decay, grad_scale]`.
    pub hyper: TensorId,
}

pub fn compile_update(ctx: &GpuContext, net: &TrainNet) -> Result<UpdatePlan> {
    let mut g = Graph::new();
    let hyper = g.input("solver.hyper", &[HYPER_LEN])?;
    for l in &net.layers {
        let Some(s) = &l.state else { continue };
        let name = &l.conv.name;
        let bias = l.conv.conv.bias.as_ref().expect("every layer has a bias");
        for (p, hist, grad, mult) in [
            (&l.conv.conv.weight, &s.hist_w, &s.grad_w, s.mult_w),
            (bias, &s.hist_b, &s.grad_b, s.mult_b),
        ] {
            let gid = g.external(grad)?;
            sgd(
                &mut g,
                &format!("{name}.sgd"),
                p,
                hist,
                gid,
                hyper,
                mult,
                true,
            )?;
        }
    }
    if g.steps().is_empty() {
        return Err(Error::Config(
            "no layer is trained: every layer of the network is frozen".into(),
        ));
    }
    Ok(UpdatePlan {
        plan: g.compile(ctx)?,
        hyper,
    })
}

/// Runs a compiled step on `rgb` (RGB8 of the original image) with `boxes` in original pixels and `seed` for random
/// sampling (ignored by the other kinds; [`Sampling::seed`]); the gradients are added to the accumulators. Boxes
/// are scaled to the network input as the authors' data layer does (`× scale`).
pub fn run_step(
    ctx: &GpuContext,
    sp: &StepPlan,
    rgb: &[u8],
    boxes: &[[f32; 4]],
    seed: u32,
) -> Result<StepLosses> {
    if boxes.len() != sp.num_gt {
        return Err(Error::shape(
            "gt_boxes",
            format!(
                "{} boxes given to a step compiled for {}",
                boxes.len(),
                sp.num_gt
            ),
        ));
    }
    let mut words = vec![0u32; sp.plan.info(sp.image).len()];
    if rgb.len().div_ceil(4) != words.len() {
        return Err(Error::shape(
            "image.rgb8",
            format!(
                "{} bytes of RGB given to a step compiled for {} (4-byte words)",
                rgb.len(),
                words.len()
            ),
        ));
    }
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..rgb.len()].copy_from_slice(rgb);
    sp.plan.write(ctx, sp.image, &words)?;
    let s = sp.scale as f32;
    let mut gt: Vec<f32> = boxes.iter().flat_map(|b| b.map(|v| v * s)).collect();
    gt.resize(sp.num_gt.max(1) * 4, 0.0);
    sp.plan.write(ctx, sp.gt, &gt)?;
    sp.plan.write(ctx, sp.seed, &[seed])?;
    let mut read = Vec::new();
    for k in 0..3 {
        read.extend([sp.losses[k].0, sp.losses[k].1, sp.samples[k]]);
    }
    let out = sp.plan.run(ctx, &read)?;
    let mut l = StepLosses {
        flops: sp.flops,
        ..StepLosses::default()
    };
    for k in 0..3 {
        let f = |i: usize| crate::gpu::readback::bytes_to_f32(&out[3 * k + i]);
        l.cls[k] = f(0)[0];
        l.bbox[k] = f(1)[0];
        let st = crate::gpu::readback::bytes_to_u32(&out[3 * k + 2]);
        l.sampled[k] = [st[0], st[1]];
    }
    Ok(l)
}
