//! Reference of `shaders/decode.wgsl`: the box decoding of docs/spec/ssh-vgg16.md §4–5 and docs/spec/retinaface-mnv2.md §6–7 in f32,
//! with anchors from `model::anchors` (the spec's own construction, not the shader's).

use crate::model::anchors::{rcnn_base_anchors, ssd_prior};
use crate::ops::decode::{BoxCoding, DecodeImage};
use crate::reference::CpuTensor;

/// One level's head outputs on the CPU; shapes as in [`crate::ops::decode::Level`].
#[derive(Clone, Copy, Debug)]
pub struct CpuLevel<'a> {
    /// `[N, A, H, W]` face probability.
    pub scores: &'a CpuTensor,
    /// `[N, 4A, H, W]`.
    pub bbox: &'a CpuTensor,
    /// `[N, 10A, H, W]` (Ssd only).
    pub landmarks: Option<&'a CpuTensor>,
    pub stride: usize,
    pub anchor_sizes: &'a [f32],
    pub module: u32,
}

/// Rows `[x1, y1, x2, y2, lx0, ly0, …, lx4, ly4, module, score]` of every anchor, image-major, then (y, x, a):
/// row `n·H·W·A + (y·W + x)·A + a`. A row with a non-finite value (Rcnn: NaN before the clip; an infinite coordinate
/// is clipped to the border as numpy does) gets a NaN score, so selection drops it. Panics on inconsistent shapes (it
/// is a test oracle).
pub fn decode(level: &CpuLevel, coding: &BoxCoding, images: &[DecodeImage]) -> Vec<[f32; 16]> {
    let [n, a, h, w] = level.scores.nchw();
    assert_eq!(level.anchor_sizes.len(), a);
    assert_eq!(level.bbox.nchw(), [n, 4 * a, h, w]);
    if let Some(l) = level.landmarks {
        assert_eq!(l.nchw(), [n, 10 * a, h, w]);
    }
    assert_eq!(images.len(), n);
    let base = rcnn_base_anchors(level.anchor_sizes);
    let mut rows = Vec::with_capacity(n * h * w * a);
    for (b, im) in images.iter().enumerate() {
        for y in 0..h {
            for x in 0..w {
                for (k, &[b1, _, b2, _]) in base.iter().enumerate() {
                    let d = |j: usize| level.bbox.at(b, 4 * k + j, y, x);
                    let mut row = [0.0f32; 16];
                    let mut nan_before_clip = false;
                    match *coding {
                        BoxCoding::Ssd {
                            variances: [v0, v1],
                        } => {
                            let [hp, wp] = im.input_hw.map(|v| v as f32);
                            let [pcx, pcy, pw, ph] =
                                ssd_prior(im.input_hw, level.stride, x, y, level.anchor_sizes[k]);
                            let cx = pcx + d(0) * v0 * pw;
                            let cy = pcy + d(1) * v0 * ph;
                            let bw = pw * (d(2) * v1).exp();
                            let bh = ph * (d(3) * v1).exp();
                            let bx = [cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0];
                            for j in 0..4 {
                                let dim = if j % 2 == 0 { wp } else { hp };
                                row[j] = bx[j] * dim / im.scale;
                            }
                            if let Some(l) = level.landmarks {
                                for j in 0..10 {
                                    let (p, pwh, dim) = if j % 2 == 0 {
                                        (pcx, pw, wp)
                                    } else {
                                        (pcy, ph, hp)
                                    };
                                    let v = l.at(b, 10 * k + j, y, x);
                                    row[4 + j] = (p + v * v0 * pwh) * dim / im.scale;
                                }
                            }
                        }
                        BoxCoding::Rcnn => {
                            // Anchors are shifted in f64 (numpy) and cast to the deltas' f32 in bbox_transform_inv.
                            let sh =
                                |v: f32, c: usize| (v as f64 + (level.stride * c) as f64) as f32;
                            let (ax1, ay1, ax2, ay2) = (sh(b1, x), sh(b1, y), sh(b2, x), sh(b2, y));
                            let bw = ax2 - ax1 + 1.0;
                            let bh = ay2 - ay1 + 1.0;
                            let cx = ax1 + 0.5 * bw;
                            let cy = ay1 + 0.5 * bh;
                            let pcx = d(0) * bw + cx;
                            let pcy = d(1) * bh + cy;
                            let pw = d(2).exp() * bw;
                            let ph = d(3).exp() * bh;
                            let bx = [
                                pcx - 0.5 * pw,
                                pcy - 0.5 * ph,
                                pcx + 0.5 * pw,
                                pcy + 0.5 * ph,
                            ];
                            nan_before_clip = bx.iter().any(|v| v.is_nan());
                            let [hi_y, hi_x] = im.input_hw.map(|v| v as f32 - 1.0);
                            for j in 0..4 {
                                let hi = if j % 2 == 0 { hi_x } else { hi_y };
                                row[j] = bx[j].min(hi).max(0.0) / im.scale;
                            }
                        }
                    }
                    row[14] = level.module as f32;
                    row[15] = level.scores.at(b, k, y, x);
                    if nan_before_clip || row.iter().any(|v| !v.is_finite()) {
                        row[15] = f32::NAN;
                    }
                    rows.push(row);
                }
            }
        }
    }
    rows
}
