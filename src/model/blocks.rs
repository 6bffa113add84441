//! Building blocks shared by both networks: a conv layer loaded by name, SSH's context/detection module and
//! the per-level heads.

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Graph, TensorId};
use crate::model::strips::{run_stage, Branch, ChainLayer, Map, Stage};
use crate::model::weights::WeightFile;
use crate::ops::conv2d::{conv2d, Conv2d};
use crate::ops::Activation;

/// Geometry of a conv layer as the checkpoint defines it.
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    /// [C_out, C_in / groups, KH, KW]
    pub shape: [usize; 4],
    pub stride: usize,
    /// (top, bottom, left, right)
    pub pad: [usize; 4],
    pub groups: usize,
    pub act: Activation,
}

impl ConvSpec {
    /// k×k, stride 1, "same" padding k/2 on every side.
    pub fn same(c_out: usize, c_in: usize, k: usize, act: Activation) -> Self {
        let p = k / 2;
        ConvSpec {
            shape: [c_out, c_in, k, k],
            stride: 1,
            pad: [p; 4],
            groups: 1,
            act,
        }
    }
}

/// A conv layer with its weights on the GPU and the name it has in the checkpoint.
#[derive(Clone, Debug)]
pub struct ConvLayer {
    pub name: String,
    pub conv: Conv2d,
}

impl ConvLayer {
    /// Loads `<name>.weight` (spec.shape) and `<name>.bias` (`[C_out]`) with shape checks and uploads them.
    /// `maps`: the element type of the network's feature maps, which the conv weights are stored as.
    pub fn load(
        ctx: &GpuContext,
        wf: &WeightFile,
        name: &str,
        spec: ConvSpec,
        maps: DType,
    ) -> Result<Self> {
        let w = wf.get(&format!("{name}.weight"), &spec.shape)?;
        let b = wf.get(&format!("{name}.bias"), &[spec.shape[0]])?;
        let weight = ctx.weight_as(&format!("{name}.weight"), w, &spec.shape, maps)?;
        let bias = ctx.weight(&format!("{name}.bias"), b, &[spec.shape[0]])?;
        let conv = Conv2d {
            weight,
            bias: Some(bias),
            stride: [spec.stride; 2],
            pad: spec.pad,
            dilation: [1, 1],
            groups: spec.groups,
            act: spec.act,
        };
        Ok(ConvLayer {
            name: name.to_string(),
            conv,
        })
    }

    /// Same layer with another fused activation (e.g. the ReLU that follows SSH's concat).
    pub fn with_act(mut self, act: Activation) -> Self {
        self.conv.act = act;
        self
    }

    pub fn c_out(&self) -> usize {
        self.conv.weight.shape[0]
    }

    /// Appends the layer; see [`conv2d`] for `residual` and `into`.
    pub fn apply(
        &self,
        g: &mut Graph,
        x: TensorId,
        residual: Option<TensorId>,
        into: Option<(TensorId, usize)>,
    ) -> Result<TensorId> {
        conv2d(g, &self.name, x, &self.conv, residual, into)
    }
}

/// SSH's detection module body: `3x3 ‖ context(dimred → 5x5 ‖ dimred → 7x7-1 → 7x7)`, concatenated, then ReLU.
///
/// The concat costs nothing: each branch's last conv writes at its channel offset of one output tensor, and the
/// ReLU after the concat is fused into those three convs (ReLU is elementwise, so relu(concat) = concat(relu)).
#[derive(Clone, Debug)]
pub struct SshModule {
    pub label: String,
    pub conv3x3: ConvLayer,
    pub dimred: ConvLayer,
    pub conv5x5: ConvLayer,
    pub conv7x7_1: ConvLayer,
    pub conv7x7: ConvLayer,
}

/// Weight names of the five convs of one module, in the order 3x3, dimred, 5x5, 7x7-1, 7x7.
pub struct SshNames<'a> {
    pub prefix: &'a str,
    pub names: [&'a str; 5],
}

impl SshModule {
    /// Loads a module whose input has `c_in` channels, with `x` channels in the 3x3 branch and `x/2` in each
    /// context branch. `inner` is the activation after dimred and 7x7-1 (ReLU in SSH, LeakyReLU 0.1 in RetinaFace).
    pub fn load(
        ctx: &GpuContext,
        wf: &WeightFile,
        n: &SshNames,
        c_in: usize,
        x: usize,
        inner: Activation,
        maps: DType,
    ) -> Result<Self> {
        let h = x / 2;
        let name = |i: usize| format!("{}.{}", n.prefix, n.names[i]);
        Ok(SshModule {
            label: n.prefix.to_string(),
            conv3x3: ConvLayer::load(
                ctx,
                wf,
                &name(0),
                ConvSpec::same(x, c_in, 3, Activation::Relu),
                maps,
            )?,
            dimred: ConvLayer::load(ctx, wf, &name(1), ConvSpec::same(h, c_in, 3, inner), maps)?,
            conv5x5: ConvLayer::load(
                ctx,
                wf,
                &name(2),
                ConvSpec::same(h, h, 3, Activation::Relu),
                maps,
            )?,
            conv7x7_1: ConvLayer::load(ctx, wf, &name(3), ConvSpec::same(h, h, 3, inner), maps)?,
            conv7x7: ConvLayer::load(
                ctx,
                wf,
                &name(4),
                ConvSpec::same(h, h, 3, Activation::Relu),
                maps,
            )?,
        })
    }

    /// Output channels (x + x/2 + x/2).
    pub fn c_out(&self) -> usize {
        self.conv3x3.c_out() + self.conv5x5.c_out() + self.conv7x7.c_out()
    }

    /// The module as a strips stage: three chains writing the post-ReLU concat `<prefix>.output`
    /// [N, c_out, H, W] at their channel offsets (dimred, shared by two chains, runs once without strips).
    pub fn stage(&self) -> Stage<'_> {
        let c0 = self.conv3x3.c_out();
        let c1 = c0 + self.conv5x5.c_out();
        fn chain<'a>(layers: &[&'a ConvLayer], c_off: usize) -> Branch<'a> {
            Branch {
                layers: layers.iter().map(|&l| ChainLayer::Conv(l)).collect(),
                c_off,
            }
        }
        Stage {
            name: format!("{}.output", self.label),
            branches: vec![
                chain(&[&self.conv3x3], 0),
                chain(&[&self.dimred, &self.conv5x5], c0),
                chain(&[&self.dimred, &self.conv7x7_1, &self.conv7x7], c1),
            ],
            residual: None,
        }
    }

    /// Appends the module on the map `f` [N, C, H, W] (in row strips when a map exceeds `limit` bytes).
    pub fn apply(&self, g: &mut Graph, f: &Map, limit: u64) -> Result<Map> {
        run_stage(g, &self.stage(), f, limit)
    }
}
