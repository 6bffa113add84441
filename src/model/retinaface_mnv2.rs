//! retinaface-mnv2: MobileNetV2 backbone, FPN, three SSH context modules and heads (spec: docs/spec/retinaface-mnv2.md).
//! Any input size: images are padded bottom/right to a multiple of 32 with pixel value 0.

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Graph};
use crate::model::blocks::{ConvLayer, ConvSpec, SshModule, SshNames};
use crate::model::strips::{run_merge, run_stage, ChainLayer, Map, Merge, Stage, Up};
use crate::model::weights::WeightFile;
use crate::ops::Activation;

const LEAKY: Activation = Activation::Leaky(0.1);
/// TF's explicit `Pad [[0,0],[0,1],[0,1],[0,0]]` before every stride-2 conv: top 0, bottom 1, left 0, right 1.
const PAD_TF_S2: [usize; 4] = [0, 1, 0, 1];

/// Per level: stride and the two prior sizes (min sizes) of its anchors.
pub const LEVELS: [(usize, [f32; 2]); 3] =
    [(8, [16.0, 32.0]), (16, [64.0, 128.0]), (32, [256.0, 512.0])];
/// Input sides must be multiples of this.
pub const ALIGN: usize = 32;

struct Block {
    expand: Option<ConvLayer>,
    dw: ConvLayer,
    project: ConvLayer,
    residual: bool,
}

/// The network's layers, uploaded to the GPU.
pub struct RetinaFaceMnv2 {
    conv1: ConvLayer,
    blocks: Vec<Block>,
    lateral: [ConvLayer; 3],
    merge2: ConvLayer,
    merge1: ConvLayer,
    ssh: Vec<SshModule>,
    /// Per level: class [4, 64], bbox [8, 64], landmark [20, 64].
    heads: Vec<[ConvLayer; 3]>,
}

/// The raw head outputs of one level, [N, 2A·k, H, W] each (in row pieces when larger than a binding).
#[derive(Clone, Debug)]
pub struct LevelHeads {
    pub class: Map,
    pub bbox: Map,
    pub landmark: Map,
}

impl RetinaFaceMnv2 {
    /// Loads every tensor by its export name with shape checks; extra tensors in the file are an error.
    /// Conv weights are stored as `maps`, the element type of the feature maps the network will run on.
    pub fn load(ctx: &GpuContext, wf: &WeightFile, maps: DType) -> Result<Self> {
        let conv = |name: &str, spec: ConvSpec| ConvLayer::load(ctx, wf, name, spec, maps);
        let pw = |o: usize, i: usize, act| ConvSpec::same(o, i, 1, act);
        let dw = |c: usize, stride: usize| ConvSpec {
            shape: [c, 1, 3, 3],
            stride,
            pad: if stride == 2 { PAD_TF_S2 } else { [1; 4] },
            groups: c,
            act: Activation::Relu6,
        };
        let conv1 = conv(
            "backbone.conv1",
            ConvSpec {
                shape: [32, 3, 3, 3],
                stride: 2,
                pad: PAD_TF_S2,
                groups: 1,
                act: Activation::Relu6,
            },
        )?;
        // (C_in, C_mid, C_out, dw stride) of blocks 0..=15 (Keras MobileNetV2 α = 1, truncated after block 15).
        const CFG: [(usize, usize, usize, usize); 16] = [
            (32, 32, 16, 1),
            (16, 96, 24, 2),
            (24, 144, 24, 1),
            (24, 144, 32, 2),
            (32, 192, 32, 1),
            (32, 192, 32, 1),
            (32, 192, 64, 2),
            (64, 384, 64, 1),
            (64, 384, 64, 1),
            (64, 384, 64, 1),
            (64, 384, 96, 1),
            (96, 576, 96, 1),
            (96, 576, 96, 1),
            (96, 576, 160, 2),
            (160, 960, 160, 1),
            (160, 960, 160, 1),
        ];
        let mut blocks = Vec::with_capacity(16);
        for (i, &(cin, mid, cout, s)) in CFG.iter().enumerate() {
            let p = format!("backbone.block{i}");
            let expand = if i == 0 {
                None
            } else {
                Some(conv(
                    &format!("{p}.expand"),
                    pw(mid, cin, Activation::Relu6),
                )?)
            };
            blocks.push(Block {
                expand,
                dw: conv(&format!("{p}.dw"), dw(mid, s))?,
                project: conv(&format!("{p}.project"), pw(cout, mid, Activation::None))?,
                residual: s == 1 && cin == cout,
            });
        }
        let lateral = [
            conv("fpn.lateral1", pw(64, 32, LEAKY))?,
            conv("fpn.lateral2", pw(64, 96, LEAKY))?,
            conv("fpn.lateral3", pw(64, 160, LEAKY))?,
        ];
        let merge2 = conv("fpn.merge2", ConvSpec::same(64, 64, 3, LEAKY))?;
        let merge1 = conv("fpn.merge1", ConvSpec::same(64, 64, 3, LEAKY))?;
        let mut ssh = Vec::new();
        let mut heads = Vec::new();
        for i in 0..3 {
            let prefix = format!("ssh{i}");
            let names = SshNames {
                prefix: &prefix,
                names: [
                    "conv3x3",
                    "conv5x5_1",
                    "conv5x5_2",
                    "conv7x7_2",
                    "conv7x7_3",
                ],
            };
            ssh.push(SshModule::load(ctx, wf, &names, 64, 32, LEAKY, maps)?);
            heads.push([
                conv(&format!("head.class.{i}"), pw(4, 64, Activation::None))?,
                conv(&format!("head.bbox.{i}"), pw(8, 64, Activation::None))?,
                conv(&format!("head.landmark.{i}"), pw(20, 64, Activation::None))?,
            ]);
        }
        wf.check_all_used()?;
        Ok(RetinaFaceMnv2 {
            conv1,
            blocks,
            lateral,
            merge2,
            merge1,
            ssh,
            heads,
        })
    }

    /// Appends the network on the normalised input `x` [N, 3, H, W] (H, W multiples of 32) and returns the raw
    /// heads of the three levels (strides 8, 16, 32).
    ///
    /// Every stage runs in row strips when one of its maps would exceed `limit` bytes (see
    /// [`strips`](crate::model::strips)): conv1 with blocks 0–1 as one chain, then each inverted-residual block, the
    /// laterals, the FPN merges, the SSH modules and the heads.
    pub fn forward(&self, g: &mut Graph, x: &Map, limit: u64) -> Result<[LevelHeads; 3]> {
        fn conv(l: &ConvLayer) -> ChainLayer<'_> {
            ChainLayer::Conv(l)
        }
        let chain = |g: &mut Graph, layers: Vec<ChainLayer>, x: &Map, res: Option<&Map>| {
            run_stage(g, &Stage::chain(layers, res), x, limit)
        };
        let mut front = vec![conv(&self.conv1)];
        for b in &self.blocks[..2] {
            front.extend(b.expand.iter().map(conv));
            front.extend([conv(&b.dw), conv(&b.project)]);
        }
        let mut t = chain(g, front, x, None)?;
        let mut feats = Vec::with_capacity(3);
        for (i, b) in self.blocks.iter().enumerate().skip(2) {
            let mut layers: Vec<_> = b.expand.iter().map(conv).collect();
            layers.extend([conv(&b.dw), conv(&b.project)]);
            t = chain(g, layers, &t, b.residual.then_some(&t))?;
            if i == 5 || i == 12 || i == 15 {
                feats.push(t.clone());
            }
        }
        let [l1, l2, p5] =
            [0, 1, 2].map(|i| chain(g, vec![conv(&self.lateral[i])], &feats[i], None));
        let (l1, l2, p5) = (l1?, l2?, p5?);
        let merge = |up, add| Merge {
            up,
            add,
            kind: Up::Nearest,
            up_first: false,
        };
        let s2 = run_merge(g, &merge("fpn.up3", "fpn.sum2"), &p5, &l2, limit)?;
        let p4 = chain(g, vec![conv(&self.merge2)], &s2, None)?;
        let s1 = run_merge(g, &merge("fpn.up2", "fpn.sum1"), &p4, &l1, limit)?;
        let p3 = chain(g, vec![conv(&self.merge1)], &s1, None)?;
        let mut out = Vec::with_capacity(3);
        for (i, p) in [p3, p4, p5].iter().enumerate() {
            let f = self.ssh[i].apply(g, p, limit)?;
            let [c, b, l] = &self.heads[i];
            out.push(LevelHeads {
                class: chain(g, vec![conv(c)], &f, None)?,
                bbox: chain(g, vec![conv(b)], &f, None)?,
                landmark: chain(g, vec![conv(l)], &f, None)?,
            });
        }
        let [a, b, c] = <[LevelHeads; 3]>::try_from(out).expect("three levels");
        Ok([a, b, c])
    }
}

/// The input size for an image of `hw`: each side rounded up to a multiple of 32.
pub fn padded_size(hw: [usize; 2]) -> [usize; 2] {
    [hw[0].div_ceil(ALIGN) * ALIGN, hw[1].div_ceil(ALIGN) * ALIGN]
}
