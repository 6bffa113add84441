//! ssh-vgg16: the paper's network with the exact semantics of the authors' Caffe model (spec: docs/spec/ssh-vgg16.md).
//! VGG-16 conv1_1…conv5_3 with Caffe ceil-mode pooling, the M1 fusion (1×1 reductions, fixed bilinear ×2
//! deconvolution, top-left crop, sum, 3×3), pool6, and three detection modules with class-major heads.

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Graph};
use crate::model::blocks::{ConvLayer, ConvSpec, SshModule, SshNames};
use crate::model::strips::{run_merge, run_stage, ChainLayer, Map, Merge, Stage, Up};
use crate::model::weights::WeightFile;
use crate::ops::max_pool::Pool;
use crate::ops::Activation;

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

/// Maps of one forward pass that callers may read: the dumpable feature maps and the raw heads (each in row pieces
/// when larger than a binding).
#[derive(Clone, Debug)]
pub struct VggOutputs {
    pub conv4_3: Map,
    pub conv5_3: Map,
    pub conv4_fuse_final: Map,
    pub pool6: Map,
    /// Per module: (cls_score [N, 2A, H, W] class-major, bbox_pred [N, 4A, H, W]); `None` when skipped.
    pub heads: [Option<(Map, Map)>; 3],
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
    /// Every stage runs in row strips when one of its maps would exceed `limit` bytes (see
    /// [`strips`](crate::model::strips)): conv1_1 … pool2, conv3_1 … conv4_3, pool4 … conv5_3, the M1 fusion, pool6,
    /// the modules and the heads.
    pub fn forward(
        &self,
        g: &mut Graph,
        x: &Map,
        modules: [bool; 3],
        limit: u64,
    ) -> Result<VggOutputs> {
        let conv = |l: usize| ChainLayer::Conv(&self.vgg[l]);
        let pool = |name| ChainLayer::Pool(name, POOL);
        let chain = |g: &mut Graph, layers: Vec<ChainLayer>, x: &Map| {
            run_stage(g, &Stage::chain(layers, None), x, limit)
        };
        let front = vec![
            conv(0),
            conv(1),
            pool("pool1"),
            conv(2),
            conv(3),
            pool("pool2"),
        ];
        let t = chain(g, front, x)?;
        let stage4 = vec![
            conv(4),
            conv(5),
            conv(6),
            pool("pool3"),
            conv(7),
            conv(8),
            conv(9),
        ];
        let conv4_3 = chain(g, stage4, &t)?;
        let stage5 = vec![pool("pool4"), conv(10), conv(11), conv(12)];
        let conv5_3 = chain(g, stage5, &conv4_3)?;
        let c5 = chain(g, vec![ChainLayer::Conv(&self.conv5_128)], &conv5_3)?;
        let c4 = chain(g, vec![ChainLayer::Conv(&self.conv4_128)], &conv4_3)?;
        let m1 = Merge {
            up: "conv5_128_up",
            add: "conv4_fuse",
            kind: Up::Bilinear,
            up_first: true,
        };
        let fuse = run_merge(g, &m1, &c5, &c4, limit)?;
        let fuse_final = chain(g, vec![ChainLayer::Conv(&self.conv4_fuse_final)], &fuse)?;
        let pool6 = chain(g, vec![pool("pool6")], &conv5_3)?;
        let inputs = [&fuse_final, &conv5_3, &pool6];
        let mut heads = [None, None, None];
        for k in (0..3).filter(|&k| modules[k]) {
            let f = self.modules[k].apply(g, inputs[k], limit)?;
            let (cls, bbox) = &self.heads[k];
            heads[k] = Some((
                chain(g, vec![ChainLayer::Conv(cls)], &f)?,
                chain(g, vec![ChainLayer::Conv(bbox)], &f)?,
            ));
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
