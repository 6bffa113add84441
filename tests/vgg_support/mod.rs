//! Seeded random ssh-vgg16 weights and images for the network conformance tests (no real checkpoint is needed:
//! the tests compare the GPU network with the CPU reference on the same weights).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use image::RgbImage;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sshface::convert::caffe::SSH_VGG16_LAYERS;
use sshface::convert::{write_safetensors, NamedTensor};
use sshface::reference::CpuTensor;

/// Gains on top of He scaling, chosen by measuring the reference's activations (see `network_vgg.rs`).
#[derive(Clone, Copy, Debug)]
pub struct Gains {
    /// conv1_1 sees mean-subtracted pixels (rms ≈ 74), not O(1) post-ReLU maps: scale it down to keep O(1).
    pub conv1_1: f32,
    /// ssh_cls_score weights: sets the spread of the face-minus-background logit.
    pub cls: f32,
    /// Added to the background logits' bias so that only some anchors have a face probability > 0.5.
    pub background_bias: f32,
    /// ssh_bbox_pred weights: sets the spread of the deltas.
    pub bbox: f32,
}

pub const GAINS: Gains = Gains {
    conv1_1: 1.0 / 74.0,
    cls: 1.5,
    background_bias: 2.0,
    bbox: 0.1,
};

/// The 74 tensors of the spec's weight table: weights uniform with std = gain·sqrt(2 / fan_in) (He), biases
/// uniform in ±0.05, in table order.
pub fn random_weights(seed: u64, gains: &Gains) -> Vec<NamedTensor> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for layer in SSH_VGG16_LAYERS.iter() {
        let [o, i, kh, kw] = layer.weight;
        let fan_in = (i * kh * kw) as f32;
        let gain = if layer.name == "conv1_1" {
            gains.conv1_1
        } else if layer.name.ends_with("cls_score") {
            gains.cls
        } else if layer.name.ends_with("bbox_pred") {
            gains.bbox
        } else {
            1.0
        };
        // Uniform(−a, a) has std a/√3.
        let a = 3f32.sqrt() * gain * (2.0 / fan_in).sqrt();
        let w: Vec<f32> = (0..o * i * kh * kw)
            .map(|_| r.random_range(-a..a))
            .collect();
        let mut b: Vec<f32> = (0..o).map(|_| r.random_range(-0.05..0.05)).collect();
        if layer.name.ends_with("cls_score") {
            // Class-major: channels 0, 1 are the background logits of anchors 0, 1.
            b[0] += gains.background_bias;
            b[1] += gains.background_bias;
        }
        out.push((format!("{}.weight", layer.name), layer.weight.to_vec(), w));
        out.push((format!("{}.bias", layer.name), vec![o], b));
    }
    out
}

/// The 74 tensors, all zero (cheap; for the loading error tests).
pub fn zero_weights() -> Vec<NamedTensor> {
    SSH_VGG16_LAYERS
        .iter()
        .flat_map(|l| {
            let n = l.weight.iter().product();
            [
                (
                    format!("{}.weight", l.name),
                    l.weight.to_vec(),
                    vec![0.0; n],
                ),
                (
                    format!("{}.bias", l.name),
                    vec![l.weight[0]],
                    vec![0.0; l.weight[0]],
                ),
            ]
        })
        .collect()
}

/// Writes `tensors` to `<cargo target tmp>/<name>.safetensors` (atomically) and returns the path.
pub fn write(name: &str, tensors: &[NamedTensor]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.safetensors"));
    write_safetensors(&path, tensors, &HashMap::new()).unwrap();
    path
}

/// A W×H RGB image: a smooth gradient plus seeded noise, so feature maps are neither flat nor pure noise.
pub fn image(seed: u64, w: u32, h: u32) -> RgbImage {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    RgbImage::from_fn(w, h, |x, y| {
        let base = [
            (x * 255 / w.max(1)) as i32,
            (y * 255 / h.max(1)) as i32,
            ((x + y) * 127 / (w + h)) as i32,
        ];
        image::Rgb(base.map(|b| (b + r.random_range(-60..=60)).clamp(0, 255) as u8))
    })
}

/// Caffe's ceil pooling sizes of an H×W input: [L1, …, L6].
pub fn levels(n: usize) -> [usize; 6] {
    let mut l = [n; 6];
    for k in 1..6 {
        l[k] = l[k - 1].div_ceil(2);
    }
    l
}

/// PyTorch `interpolate(scale_factor=2, mode="bilinear", align_corners=False)`: the clamped upsampling that the
/// spec's §11 lists as wrong, cropped top-left to `hw`.
pub fn clamped_upsample(x: &CpuTensor, hw: [usize; 2]) -> CpuTensor {
    let [n, c, h, w] = x.nchw();
    let tap = |o: usize, len: usize| {
        let src = ((o as f32 + 0.5) / 2.0 - 0.5).max(0.0);
        let i0 = src.floor() as usize;
        (i0, (i0 + 1).min(len - 1), src - i0 as f32)
    };
    let mut out = CpuTensor::zeros(&[n, c, hw[0], hw[1]]);
    let mut i = 0;
    for b in 0..n {
        for ch in 0..c {
            for y in 0..hw[0] {
                let (y0, y1, fy) = tap(y, h);
                for xx in 0..hw[1] {
                    let (x0, x1, fx) = tap(xx, w);
                    let row = |yy| x.at(b, ch, yy, x0) * (1.0 - fx) + x.at(b, ch, yy, x1) * fx;
                    out.data[i] = row(y0) * (1.0 - fy) + row(y1) * fy;
                    i += 1;
                }
            }
        }
    }
    out
}

/// Centre crop (offset 2·L5 − L4 along each axis) instead of Caffe's top-left crop.
pub fn offset_crop(x: &CpuTensor, hw: [usize; 2]) -> CpuTensor {
    let full = sshface::reference::upsample_bilinear::upsample_bilinear(
        x,
        [2 * x.shape[2], 2 * x.shape[3]],
    );
    let [n, c, fh, fw] = full.nchw();
    let (oy, ox) = (fh - hw[0], fw - hw[1]);
    let mut out = CpuTensor::zeros(&[n, c, hw[0], hw[1]]);
    let mut i = 0;
    for b in 0..n {
        for ch in 0..c {
            for y in 0..hw[0] {
                for xx in 0..hw[1] {
                    out.data[i] = full.at(b, ch, y + oy, xx + ox);
                    i += 1;
                }
            }
        }
    }
    out
}
