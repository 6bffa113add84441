//! ssh-vgg16: the paper's network with the exact semantics of the authors' Caffe model (spec: docs/spec/ssh-vgg16.md).
//! VGG-16 conv1_1…conv5_3 with Caffe ceil-mode pooling, the M1 fusion (1×1 reductions, fixed bilinear ×2
//! deconvolution, top-left crop, sum, 3×3), pool6, and three detection modules with class-major heads.

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Graph, TensorId};
use crate::model::blocks::{ConvLayer, ConvSpec, SshModule, SshNames};
use crate::model::strips::{run_chain, ChainLayer};
use crate::model::weights::WeightFile;
use crate::ops::max_pool::{max_pool, Pool};
use crate::ops::upsample_bilinear::upsample_bilinear;
use crate::ops::{add::add, Activation};

/// Caffe mean of the B, G, R channels, subtracted before the resize.
pub const MEAN_BGR: [f32; 3] = [102.9801, 115.9465, 122.7717];
/// Per module: stride and anchor scales (base size 16).
pub const MODULES: [(usize, [f32; 2]); 3] = [(8, [1.0, 2.0]), (16, [4.0, 8.0]), (32, [16.0, 32.0])];
/// Detections kept per module before the threshold (`N_DETS_PER_MODULE`).
pub const TOP_K: usize = 1000;

/// VGG-16 layers: (name, C_in, C_out); a pool follows the last conv of each of the first four stages.
const VGG: [(&str, usize, usize); 13] = [
    ("conv1_1", 3, 64),
    ("conv1_2", 64, 64),
    ("conv2_1", 64, 128),
    ("conv2_2", 128, 128),
    ("conv3_1", 128, 256),
    ("conv3_2", 256, 256),
    ("conv3_3", 256, 256),
    ("conv4_1", 256, 512),
    ("conv4_2", 512, 512),
    ("conv4_3", 512, 512),
    ("conv5_1", 512, 512),
    ("conv5_2", 512, 512),
    ("conv5_3", 512, 512),
];
const POOL_AFTER: [&str; 4] = ["conv1_2", "conv2_2", "conv3_3", "conv4_3"];

/// Caffe's max pool k2 s2 p0 in ceil mode.
pub const POOL: Pool = Pool {
    kernel: [2, 2],
    stride: [2, 2],
    pad: [0, 0],
    ceil_mode: true,
};

pub struct SshVgg16 {
    vgg: Vec<ConvLayer>,
    conv4_128: ConvLayer,
    conv5_128: ConvLayer,
    conv4_fuse_final: ConvLayer,
    modules: Vec<SshModule>,
    /// Per module: (ssh_cls_score [4, C], ssh_bbox_pred [8, C]).
    heads: Vec<(ConvLayer, ConvLayer)>,
}

/// Tensors of one forward pass that callers may read: the dumpable feature maps and the raw heads.
#[derive(Clone, Copy, Debug)]
pub struct VggOutputs {
    pub conv4_3: TensorId,
    pub conv5_3: TensorId,
    pub conv4_fuse_final: TensorId,
    pub pool6: TensorId,
    /// Per module: (cls_score [N, 2A, H, W] class-major, bbox_pred [N, 4A, H, W]).
    pub heads: [(TensorId, TensorId); 3],
}

impl SshVgg16 {
    /// Loads the 74 tensors of the spec's weight table with shape checks; unknown tensors are an error.
    /// Conv weights are stored as `maps`, the element type of the feature maps the network will run on.
    pub fn load(ctx: &GpuContext, wf: &WeightFile, maps: DType) -> Result<Self> {
        let relu = Activation::Relu;
        let vgg = VGG
            .iter()
            .map(|&(n, i, o)| ConvLayer::load(ctx, wf, n, ConvSpec::same(o, i, 3, relu), maps))
            .collect::<Result<Vec<_>>>()?;
        let conv4_128 = ConvLayer::load(
            ctx,
            wf,
            "conv4_128",
            ConvSpec::same(128, 512, 1, relu),
            maps,
        )?;
        let conv5_128 = ConvLayer::load(
            ctx,
            wf,
            "conv5_128",
            ConvSpec::same(128, 512, 1, relu),
            maps,
        )?;
        let conv4_fuse_final = ConvLayer::load(
            ctx,
            wf,
            "conv4_fuse_final",
            ConvSpec::same(128, 128, 3, relu),
            maps,
        )?;
        let mut modules = Vec::new();
        let mut heads = Vec::new();
        for (k, (c_in, x)) in [(128, 128), (512, 256), (512, 256)].into_iter().enumerate() {
            let prefix = format!("m{}", k + 1);
            let names = SshNames {
                prefix: &prefix,
                names: ["ssh_3x3", "ssh_dimred", "ssh_5x5", "ssh_7x7-1", "ssh_7x7"],
            };
            let m = SshModule::load(ctx, wf, &names, c_in, x, relu, maps)?;
            let c = m.c_out();
            heads.push((
                ConvLayer::load(
                    ctx,
                    wf,
                    &format!("{prefix}.ssh_cls_score"),
                    ConvSpec::same(4, c, 1, Activation::None),
                    maps,
                )?,
                ConvLayer::load(
                    ctx,
                    wf,
                    &format!("{prefix}.ssh_bbox_pred"),
                    ConvSpec::same(8, c, 1, Activation::None),
                    maps,
                )?,
            ));
            modules.push(m);
        }
        wf.check_all_used()?;
        Ok(SshVgg16 {
            vgg,
            conv4_128,
            conv5_128,
            conv4_fuse_final,
            modules,
            heads,
        })
    }

    /// Appends the network on `x` [N, 3, H, W] (BGR, mean-subtracted). `modules[k]` false skips module k+1
    /// (the pyramid's largest level runs without M3).
    ///
    /// conv1_1 … pool2 (the full- and half-resolution maps) run in row strips when one of their maps would exceed
    /// `limit` bytes (see [`strips`](crate::model::strips)).
    pub fn forward(
        &self,
        g: &mut Graph,
        x: TensorId,
        modules: [bool; 3],
        limit: u64,
    ) -> Result<VggOutputs> {
        let front = [
            ChainLayer::Conv(&self.vgg[0]),
            ChainLayer::Conv(&self.vgg[1]),
            ChainLayer::Pool("pool1", POOL),
            ChainLayer::Conv(&self.vgg[2]),
            ChainLayer::Conv(&self.vgg[3]),
            ChainLayer::Pool("pool2", POOL),
        ];
        let mut t = run_chain(g, x, &front, limit)?;
        let (mut conv4_3, mut conv5_3) = (x, x);
        for layer in &self.vgg[4..] {
            t = layer.apply(g, t, None, None)?;
            match layer.name.as_str() {
                "conv4_3" => conv4_3 = t,
                "conv5_3" => conv5_3 = t,
                _ => {}
            }
            if POOL_AFTER.contains(&layer.name.as_str()) {
                let pool = format!("pool{}", &layer.name[4..5]);
                t = max_pool(g, &pool, t, &POOL)?;
            }
        }
        let c5 = self.conv5_128.apply(g, conv5_3, None, None)?;
        let c4 = self.conv4_128.apply(g, conv4_3, None, None)?;
        let s4 = g.shape(c4).to_vec();
        let up = upsample_bilinear(g, "conv5_128_up", c5, [s4[2], s4[3]])?;
        let fuse = add(g, "conv4_fuse", up, c4, Activation::None)?;
        let fuse_final = self.conv4_fuse_final.apply(g, fuse, None, None)?;
        let pool6 = max_pool(g, "pool6", conv5_3, &POOL)?;
        let inputs = [fuse_final, conv5_3, pool6];
        let mut heads = [(x, x); 3];
        for k in 0..3 {
            if !modules[k] {
                continue;
            }
            let f = self.modules[k].apply(g, inputs[k])?;
            heads[k] = (
                self.heads[k].0.apply(g, f, None, None)?,
                self.heads[k].1.apply(g, f, None, None)?,
            );
        }
        Ok(VggOutputs {
            conv4_3,
            conv5_3,
            conv4_fuse_final: fuse_final,
            pool6,
            heads,
        })
    }
}

/// The single-scale rule (`wider.yml`): s = short/min(H, W); if round(s·max(H, W)) > long, s = long/max(H, W).
/// Rounding is numpy's (half to even).
pub fn scale_for(hw: [usize; 2], short: f64, long: f64) -> f64 {
    let (mn, mx) = (hw[0].min(hw[1]) as f64, hw[0].max(hw[1]) as f64);
    let s = short / mn;
    if (s * mx).round_ties_even() > long {
        long / mx
    } else {
        s
    }
}

/// Scales of the pyramid protocol (`wider_pyramid.yml`): base from (800, 1200), times {0.625, 1, 1.5, 2}.
/// M3 is skipped on the last (largest) level.
pub fn pyramid_scales(hw: [usize; 2]) -> [f64; 4] {
    let base = scale_for(hw, 800.0, 1200.0);
    // R:`SSH/test.py` evaluates `float(scale) / 800 * base_scale`; `base * t / 800` differs in the last bit
    // (1.2·1200/800 = 1.8, 1200/800·1.2 = 1.7999999999999998), which can move cvRound(H·s) at a tie.
    [500.0, 800.0, 1200.0, 1600.0].map(|t| t / 800.0 * base)
}
