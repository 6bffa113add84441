//! CPU reference of the whole ssh-vgg16 detector (spec docs/spec/ssh-vgg16.md), written from the spec's tables with the
//! reference ops, sharing nothing with `model::ssh_vgg16` / `model::pipeline` beyond those ops: it is the oracle
//! that the GPU network and its protocols are tested against. Batch 1, f32 (conv accumulates in f64).

use crate::error::Result;
use crate::model::weights::WeightFile;
use crate::ops::decode::{BoxCoding, DecodeImage};
use crate::ops::max_pool::Pool;
use crate::ops::preprocess::Preprocess;
use crate::ops::softmax2::ClassLayout;
use crate::ops::Activation;
use crate::reference::decode::CpuLevel;
use crate::reference::nms::{Segment, SelectConfig};
use crate::reference::{self as r, CpuTensor};

/// A named tensor as `Detector::dump` returns it: (name, shape, values).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Per module k = 1, 2, 3 (spec §4): stride and the two anchor scales, smaller first.
const ANCHORS: [(usize, [f32; 2]); 3] = [(8, [1.0, 2.0]), (16, [4.0, 8.0]), (32, [16.0, 32.0])];

/// How the protocol runs (spec §6).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Resize factor of each pyramid level (one entry for the single-scale protocols).
    pub scales: Vec<f64>,
    /// The pyramid protocol: M3 does not run on the level with the largest scale.
    pub skip_m3_on_largest: bool,
    /// Rows with probability > this (strict) enter NMS (the authors use 0.05).
    pub score_threshold: f32,
    /// IoU (+1 convention) above which (strict) a box is suppressed (the authors use 0.3).
    pub nms_threshold: f32,
}

/// The post-ReLU feature maps (spec §3) and the raw heads of the modules that ran.
#[derive(Clone, Debug)]
pub struct Features {
    pub conv4_3: CpuTensor,
    pub conv5_3: CpuTensor,
    pub conv4_fuse_final: CpuTensor,
    pub pool6: CpuTensor,
    /// Per module: (ssh_cls_score [1, 4, H, W] class-major, ssh_bbox_pred [1, 8, H, W]); None when skipped.
    pub heads: [Option<(CpuTensor, CpuTensor)>; 3],
}

/// What the reference detector returns for one image.
#[derive(Clone, Debug)]
pub struct Output {
    /// At the first scale, the tensors of `Detector::dump`: per module `m{k}.cls_prob` [H, W, A] and
    /// `m{k}.bbox_pred` [4A, H, W], then `conv4_3`, `conv5_3`, `conv4_fuse_final`, `pool6` [C, H, W].
    pub dumps: Vec<NamedTensor>,
    /// Kept rows `[x1, y1, x2, y2, 0 × 10, module, score]` in original-image pixels, score-descending.
    pub detections: Vec<[f32; 16]>,
    /// The feature maps and raw heads of the first scale (for tests that perturb one stage).
    pub first: Features,
}

/// One conv layer: `<name>.weight` [c_out, c_in, k, k] and `<name>.bias` [c_out], stride 1, pad k/2.
fn conv(
    wf: &WeightFile,
    name: &str,
    x: &CpuTensor,
    c_out: usize,
    k: usize,
    act: Activation,
) -> Result<CpuTensor> {
    let c_in = x.shape[1];
    let shape = [c_out, c_in, k, k];
    let w = CpuTensor::new(&shape, wf.get(&format!("{name}.weight"), &shape)?.to_vec());
    let b = wf.get(&format!("{name}.bias"), &[c_out])?;
    let p = k / 2;
    Ok(r::conv2d::conv2d(
        x,
        &w,
        Some(b),
        [1, 1],
        [p; 4],
        [1, 1],
        1,
        act,
        None,
    ))
}

/// Caffe max pool k2 s2 p0, ceil mode.
fn pool(x: &CpuTensor) -> CpuTensor {
    let p = Pool {
        kernel: [2, 2],
        stride: [2, 2],
        pad: [0, 0],
        ceil_mode: true,
    };
    r::max_pool::max_pool(x, &p)
}

/// Channel concat of [1, C_i, H, W] tensors.
fn concat(parts: &[&CpuTensor]) -> CpuTensor {
    let [_, _, h, w] = parts[0].nchw();
    let c: usize = parts.iter().map(|t| t.shape[1]).sum();
    let mut data = Vec::with_capacity(c * h * w);
    for t in parts {
        assert_eq!(t.nchw()[2..], [h, w], "concat of {:?}", t.shape);
        data.extend_from_slice(&t.data);
    }
    CpuTensor::new(&[1, c, h, w], data)
}

/// Detection module m{k} (spec §3.2) on `f`: (cls_score, bbox_pred).
fn module(wf: &WeightFile, k: usize, f: &CpuTensor) -> Result<(CpuTensor, CpuTensor)> {
    let x = if k == 1 { 128 } else { 256 };
    let n = |s: &str| format!("m{k}.{s}");
    let none = Activation::None;
    let relu = Activation::Relu;
    let c3 = conv(wf, &n("ssh_3x3"), f, x, 3, none)?;
    let d = conv(wf, &n("ssh_dimred"), f, x / 2, 3, relu)?;
    let c5 = conv(wf, &n("ssh_5x5"), &d, x / 2, 3, none)?;
    let c7_1 = conv(wf, &n("ssh_7x7-1"), &d, x / 2, 3, relu)?;
    let c7 = conv(wf, &n("ssh_7x7"), &c7_1, x / 2, 3, none)?;
    let mut out = concat(&[&c3, &c5, &c7]);
    // The ReLU comes after the concat (ssh_output_relu), not inside the branches.
    out.data.iter_mut().for_each(|v| *v = v.max(0.0));
    Ok((
        conv(wf, &n("ssh_cls_score"), &out, 4, 1, none)?,
        conv(wf, &n("ssh_bbox_pred"), &out, 8, 1, none)?,
    ))
}

/// The network (spec §3) on `x` [1, 3, H, W] (BGR, mean-subtracted); `modules[k]` false skips M{k+1}.
pub fn forward(wf: &WeightFile, x: &CpuTensor, modules: [bool; 3]) -> Result<Features> {
    let relu = Activation::Relu;
    let stages: [&[(&str, usize)]; 5] = [
        &[("conv1_1", 64), ("conv1_2", 64)],
        &[("conv2_1", 128), ("conv2_2", 128)],
        &[("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256)],
        &[("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512)],
        &[("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512)],
    ];
    let mut t = x.clone();
    let mut conv4_3 = None;
    for (i, stage) in stages.iter().enumerate() {
        if i > 0 {
            t = pool(&t);
        }
        for &(name, c) in stage.iter() {
            t = conv(wf, name, &t, c, 3, relu)?;
        }
        if i == 3 {
            conv4_3 = Some(t.clone());
        }
    }
    let conv4_3 = conv4_3.unwrap();
    let conv5_3 = t;
    let c5 = conv(wf, "conv5_128", &conv5_3, 128, 1, relu)?;
    let c4 = conv(wf, "conv4_128", &conv4_3, 128, 1, relu)?;
    // Fixed deconvolution to 2·L5, then the top-left crop to conv4_128's size; the sum has no ReLU.
    let [_, _, h4, w4] = c4.nchw();
    let up = r::upsample_bilinear::upsample_bilinear(&c5, [h4, w4]);
    let fuse = CpuTensor::new(&c4.shape, r::add::add(&up.data, &c4.data, Activation::None));
    let conv4_fuse_final = conv(wf, "conv4_fuse_final", &fuse, 128, 3, relu)?;
    let pool6 = pool(&conv5_3);
    let inputs = [&conv4_fuse_final, &conv5_3, &pool6];
    let mut heads = [None, None, None];
    for k in 0..3 {
        if modules[k] {
            heads[k] = Some(module(wf, k + 1, inputs[k])?);
        }
    }
    Ok(Features {
        conv4_3,
        conv5_3,
        conv4_fuse_final,
        pool6,
        heads,
    })
}

/// cvRound(v·s) per side (ties to even), as `cv2.resize(fx = fy = s)` sizes its output.
fn resized(hw: [usize; 2], s: f64) -> [usize; 2] {
    hw.map(|v| (v as f64 * s).round_ties_even() as usize)
}

/// [1, C, H, W] → [C, H, W] values.
fn chw(name: &str, t: &CpuTensor) -> NamedTensor {
    (name.to_string(), t.shape[1..].to_vec(), t.data.clone())
}

/// [1, A, H, W] → [H, W, A].
fn hwa(name: &str, t: &CpuTensor) -> NamedTensor {
    let [_, a, h, w] = t.nchw();
    let mut v = Vec::with_capacity(a * h * w);
    for y in 0..h {
        for x in 0..w {
            for k in 0..a {
                v.push(t.at(0, k, y, x));
            }
        }
    }
    (name.to_string(), vec![h, w, a], v)
}

/// The test protocol (spec §2, §4–6) on one RGB8 image of size `hw` = (H, W).
pub fn detect(wf: &WeightFile, rgb: &[u8], hw: [usize; 2], st: &Settings) -> Result<Output> {
    let largest = st.scales.iter().cloned().fold(f64::MIN, f64::max);
    let mut rows: Vec<[f32; 16]> = Vec::new();
    let mut segments = Vec::new();
    let mut dumps = Vec::new();
    let mut first = None;
    for (li, &s) in st.scales.iter().enumerate() {
        let rhw = resized(hw, s);
        let pre = Preprocess {
            src_hw: hw,
            scale: s,
            resized_hw: rhw,
            bgr: true,
            mean: [102.9801, 115.9465, 122.7717],
            scale_mul: [1.0; 3],
            pad_value: 0.0,
        };
        let x = r::preprocess::preprocess(rgb, &pre, rhw);
        let skip_m3 = st.skip_m3_on_largest && s == largest;
        let f = forward(wf, &x, [true, true, !skip_m3])?;
        for (m, head) in f.heads.iter().enumerate() {
            let Some((cls, bbox)) = head else { continue };
            let prob = r::softmax2::softmax2(cls, ClassLayout::ClassMajor);
            let (stride, scales) = ANCHORS[m];
            let level = CpuLevel {
                scores: &prob,
                bbox,
                landmarks: None,
                stride,
                anchor_sizes: &scales,
                module: m as u32,
            };
            let img = DecodeImage {
                input_hw: rhw,
                scale: s as f32,
            };
            let decoded = r::decode::decode(&level, &BoxCoding::Rcnn, &[img]);
            segments.push(Segment {
                offset: rows.len(),
                len: decoded.len(),
                top_k: Some(1000),
            });
            rows.extend(decoded);
            if li == 0 {
                dumps.push(hwa(&format!("m{}.cls_prob", m + 1), &prob));
                dumps.push(chw(&format!("m{}.bbox_pred", m + 1), bbox));
            }
        }
        if li == 0 {
            dumps.push(chw("conv4_3", &f.conv4_3));
            dumps.push(chw("conv5_3", &f.conv5_3));
            dumps.push(chw("conv4_fuse_final", &f.conv4_fuse_final));
            dumps.push(chw("pool6", &f.pool6));
            first = Some(f);
        }
    }
    let cfg = SelectConfig {
        score_threshold: st.score_threshold,
        iou_threshold: st.nms_threshold,
        plus_one: true,
        max_candidates: rows.len(),
    };
    let detections = r::nms::select(&rows, &segments, &cfg);
    Ok(Output {
        dumps,
        detections,
        first: first.expect("at least one scale"),
    })
}
