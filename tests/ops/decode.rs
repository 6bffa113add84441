//! decode.wgsl vs reference::decode::decode on seeded random heads, hand-computed rows, the spec's anchor table
//! and error messages. Pixel tolerance: atol 1e-4 px + rtol 1e-5. Why: both sides round the same f32 formulas,
//! but the GPU's exp() may be a few ULP off and the driver may fuse multiply-adds; coordinates up to a few
//! thousand px (before clipping) then differ by ~1e-5 relative, and x1 = c − w/2 cancels to absolute ~1e-5 px.
//! The golden retinaface check lives in `decode_golden.rs`, hand-computed rows in `decode_hand.rs`.
//!
//! f16 bbox and landmark maps (decode_f16.wgsl; scores stay f32, as softmax2 writes them, and rows are f32):
//! the case tables run again on deltas rounded to f16, the reference on the same rounded values. The shader
//! widens each delta and computes exactly as at f32, so the tolerances stay.

use super::f16_maps::{check_at, stored};
use crate::common::*;
use sshface::gpu::{DType, Graph};
use sshface::ops::decode::{decode, BoxCoding, DecodeImage, Level};
use sshface::ops::fill::fill;
use sshface::reference::decode::{decode as ref_decode, CpuLevel};
use sshface::reference::CpuTensor;

pub const SSD: BoxCoding = BoxCoding::Ssd {
    variances: [0.1, 0.2],
};
const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-5;
/// Rows no level writes keep this value (checks that a level stays inside its row range).
const SENTINEL: f32 = -7.25;

/// One level's CPU head outputs and geometry.
pub struct LevelData {
    pub scores: CpuTensor,
    pub bbox: CpuTensor,
    pub landm: Option<CpuTensor>,
    pub stride: usize,
    pub sizes: Vec<f32>,
    pub module: u32,
}

pub fn image(h: usize, w: usize, scale: f32) -> DecodeImage {
    DecodeImage {
        input_hw: [h, w],
        scale,
    }
}

/// Random level: scores in [0, 1), box deltas in [-d, d), landmark deltas in [-3, 3).
fn random_level(
    seed: u64,
    [n, h, w]: [usize; 3],
    stride: usize,
    sizes: &[f32],
    module: u32,
    landmarks: bool,
    d: f32,
) -> LevelData {
    let a = sizes.len();
    let t = |s: u64, k: usize, lo: f32, hi: f32| {
        CpuTensor::new(&[n, k * a, h, w], rand_vec(s, n * k * a * h * w, lo, hi))
    };
    LevelData {
        scores: t(seed, 1, 0.0, 1.0),
        bbox: t(seed + 1, 4, -d, d),
        landm: landmarks.then(|| t(seed + 2, 10, -3.0, 3.0)),
        stride,
        sizes: sizes.to_vec(),
        module,
    }
}

/// `l` as it is stored with maps of `dtype`: bbox and landmark deltas rounded for f16 (scores stay f32).
fn stored_level(dtype: DType, mut l: LevelData) -> LevelData {
    l.bbox.data = stored(dtype, l.bbox.data);
    if let Some(t) = &mut l.landm {
        t.data = stored(dtype, std::mem::take(&mut t.data));
    }
    l
}

/// Decodes `levels` at consecutive row offsets starting at `first` into rows [N, r, 16] on the GPU, with bbox
/// and landmark maps of `maps` (f16: rounded on the write).
pub fn gpu_rows(
    levels: &[LevelData],
    first: usize,
    r: usize,
    coding: &BoxCoding,
    images: &[DecodeImage],
    maps: DType,
) -> Option<Vec<f32>> {
    let ctx = gpu()?;
    let n = images.len();
    let mut g = Graph::new();
    let rows = g.tensor("rows", &[n, r, 16]).unwrap();
    fill(&mut g, "clear", rows, SENTINEL.to_bits()).unwrap();
    let mut inputs = Vec::new();
    let mut off = first;
    for (i, l) in levels.iter().enumerate() {
        let mut inp = |name: &str, t: &CpuTensor, dtype| {
            let id = g.input_as(&format!("{name}{i}"), &t.shape, dtype).unwrap();
            inputs.push((id, t.data.clone()));
            id
        };
        let scores = inp("scores", &l.scores, DType::F32);
        let bbox = inp("bbox", &l.bbox, maps);
        let landmarks = l.landm.as_ref().map(|t| inp("landm", t, maps));
        let level = Level {
            scores,
            bbox,
            landmarks,
            stride: l.stride,
            anchor_sizes: l.sizes.clone(),
            module: l.module,
        };
        decode(
            &mut g,
            &format!("decode{i}"),
            &level,
            coding,
            images,
            rows,
            off,
        )
        .unwrap();
        off += l.scores.data.len() / n;
    }
    g.mark_output(rows);
    let inputs: Vec<_> = inputs.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    Some(run_graph(ctx, g, &inputs, &[rows]).remove(0))
}

/// The same layout from the reference, SENTINEL in rows no level covers.
pub fn cpu_rows(
    levels: &[LevelData],
    first: usize,
    r: usize,
    coding: &BoxCoding,
    images: &[DecodeImage],
) -> Vec<f32> {
    let n = images.len();
    let mut out = vec![SENTINEL; n * r * 16];
    let mut off = first;
    for l in levels {
        let cl = CpuLevel {
            scores: &l.scores,
            bbox: &l.bbox,
            landmarks: l.landm.as_ref(),
            stride: l.stride,
            anchor_sizes: &l.sizes,
            module: l.module,
        };
        let rows = ref_decode(&cl, coding, images);
        let per = rows.len() / n;
        for (i, row) in rows.iter().enumerate() {
            let at = ((i / per) * r + off + i % per) * 16;
            out[at..at + 16].copy_from_slice(row);
        }
        off += per;
    }
    out
}

/// The comparison must be able to fail: a plausibly wrong reference is outside the tolerance somewhere.
fn assert_differs(case: &str, got: &[f32], wrong: &[f32]) {
    let caught = got
        .iter()
        .zip(wrong)
        .any(|(g, w)| (g - w).abs() > ATOL + RTOL * w.abs());
    assert!(caught, "{case}: a wrong reference would pass the tolerance");
}

struct Case {
    name: &'static str,
    coding: BoxCoding,
    images: Vec<DecodeImage>,
    /// (h, w, stride, sizes) per level; module = level index.
    levels: Vec<(usize, usize, usize, Vec<f32>)>,
    landmarks: bool,
    /// Box deltas are drawn from [-delta, delta).
    delta: f32,
    /// Rows before the first level and after the last (left at SENTINEL).
    gap: (usize, usize),
}

/// Runs `cases` with bbox and landmark maps of `maps`.
fn run_cases(cases: Vec<Case>, maps: DType) {
    for (ci, c) in cases.iter().enumerate() {
        let n = c.images.len();
        let levels: Vec<LevelData> = c
            .levels
            .iter()
            .enumerate()
            .map(|(i, (h, w, s, sz))| {
                let seed = 1000 * ci as u64 + 10 * i as u64;
                let l = random_level(seed, [n, *h, *w], *s, sz, i as u32, c.landmarks, c.delta);
                stored_level(maps, l)
            })
            .collect();
        let total: usize = c.levels.iter().map(|(h, w, _, s)| h * w * s.len()).sum();
        let r = c.gap.0 + total + c.gap.1;
        let want = cpu_rows(&levels, c.gap.0, r, &c.coding, &c.images);
        let wrong = match c.coding {
            BoxCoding::Ssd { variances: [a, b] } => cpu_rows(
                &levels,
                c.gap.0,
                r,
                &BoxCoding::Ssd { variances: [b, a] },
                &c.images,
            ),
            BoxCoding::Rcnn => {
                let imgs: Vec<_> = c
                    .images
                    .iter()
                    .map(|i| image(i.input_hw[0], i.input_hw[1], 1.0))
                    .collect();
                cpu_rows(&levels, c.gap.0, r, &c.coding, &imgs)
            }
        };
        assert_differs(c.name, &want, &wrong);
        if c.coding == BoxCoding::Rcnn && c.delta >= 2.0 {
            // Clipping must actually happen: some x1/y1 at 0 and some x2 at (W' − 1)/s.
            let at_zero = want
                .chunks(16)
                .filter(|r| r[0] == 0.0 || r[1] == 0.0)
                .count();
            let hi = (c.images[0].input_hw[1] as f32 - 1.0) / c.images[0].scale;
            let at_hi = want[..r * 16].chunks(16).filter(|r| r[2] == hi).count();
            assert!(
                at_zero > 10 && at_hi > 10,
                "{}: clipping not exercised ({at_zero}, {at_hi})",
                c.name
            );
        }
        let Some(got) = gpu_rows(&levels, c.gap.0, r, &c.coding, &c.images, maps) else {
            return;
        };
        assert_close(&format!("{} [{maps:?}]", c.name), &got, &want, ATOL, RTOL);
    }
}

fn ssd_cases() -> Vec<Case> {
    let fpn = |h: usize, w: usize| {
        vec![
            (h / 8, w / 8, 8, vec![16.0, 32.0]),
            (h / 16, w / 16, 16, vec![64.0, 128.0]),
            (h / 32, w / 32, 32, vec![256.0, 512.0]),
        ]
    };
    vec![
        Case {
            name: "ssd 64x96 three levels, landmarks, batch 2 of different padded sizes",
            coding: SSD,
            images: vec![image(64, 96, 1.0), image(96, 64, 1.0)],
            levels: fpn(64, 96),
            landmarks: true,
            delta: 2.0,
            gap: (0, 0),
        },
        Case {
            name: "ssd odd 17x34, A = 3, no landmarks, rows at offset 5 with 3 spare",
            coding: SSD,
            images: vec![image(136, 272, 1.0)],
            levels: vec![(17, 34, 8, vec![16.0, 24.0, 32.0])],
            landmarks: false,
            delta: 2.0,
            gap: (5, 3),
        },
        Case {
            name: "ssd A = 5 (second vec4 of sizes), resized input scale 0.8",
            coding: BoxCoding::Ssd {
                variances: [0.1, 0.25],
            },
            images: vec![image(96, 160, 0.8)],
            levels: vec![(3, 5, 32, vec![8.0, 16.0, 24.0, 32.0, 40.0])],
            landmarks: true,
            delta: 1.0,
            gap: (0, 1),
        },
    ]
}

fn rcnn_cases() -> Vec<Case> {
    vec![
        Case {
            name: "rcnn M2 13x7, clipping (deltas ±3), batch 2 with own sizes and scales",
            coding: BoxCoding::Rcnn,
            images: vec![image(200, 110, 0.75), image(150, 90, 1.3)],
            levels: vec![(13, 7, 16, vec![4.0, 8.0])],
            landmarks: false,
            delta: 3.0,
            gap: (0, 0),
        },
        Case {
            name: "rcnn M1 9x17 stride 8, mild deltas, scale 2.5",
            coding: BoxCoding::Rcnn,
            images: vec![image(70, 140, 2.5)],
            levels: vec![(9, 17, 8, vec![1.0, 2.0])],
            landmarks: false,
            delta: 1.0,
            gap: (2, 0),
        },
        Case {
            name: "rcnn M1+M2+M3 into one rows tensor, batch 2, ceil-pooled odd sizes",
            coding: BoxCoding::Rcnn,
            images: vec![image(100, 52, 1.5), image(97, 49, 0.5)],
            levels: vec![
                (13, 7, 8, vec![1.0, 2.0]),
                (7, 4, 16, vec![4.0, 8.0]),
                (4, 2, 32, vec![16.0, 32.0]),
            ],
            landmarks: false,
            delta: 2.0,
            gap: (0, 0),
        },
    ]
}

#[test]
fn decode_ssd_cases() {
    check_at(DType::F32, |d| run_cases(ssd_cases(), d));
}

#[test]
fn decode_rcnn_cases() {
    check_at(DType::F32, |d| run_cases(rcnn_cases(), d));
}

#[test]
fn decode_ssd_f16_cases() {
    check_at(DType::F16, |d| run_cases(ssd_cases(), d));
}

#[test]
fn decode_rcnn_f16_cases() {
    check_at(DType::F16, |d| run_cases(rcnn_cases(), d));
}
