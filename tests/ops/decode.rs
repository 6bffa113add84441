//! decode.wgsl vs reference::decode::decode on seeded random heads, hand-computed rows, the spec's anchor table
//! and error messages. Pixel tolerance: atol 1e-4 px + rtol 1e-5. Why: both sides round the same f32 formulas,
//! but the GPU's exp() may be a few ULP off and the driver may fuse multiply-adds; coordinates up to a few
//! thousand px (before clipping) then differ by ~1e-5 relative, and x1 = c − w/2 cancels to absolute ~1e-5 px.
//! The golden retinaface check lives in `decode_golden.rs`.

use crate::common::*;
use sshface::gpu::Graph;
use sshface::model::anchors::rcnn_base_anchors;
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

fn image(h: usize, w: usize, scale: f32) -> DecodeImage {
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

/// Decodes `levels` at consecutive row offsets starting at `first` into rows [N, r, 16] on the GPU.
pub fn gpu_rows(
    levels: &[LevelData],
    first: usize,
    r: usize,
    coding: &BoxCoding,
    images: &[DecodeImage],
) -> Option<Vec<f32>> {
    let ctx = gpu()?;
    let n = images.len();
    let mut g = Graph::new();
    let rows = g.tensor("rows", &[n, r, 16]).unwrap();
    fill(&mut g, "clear", rows, SENTINEL.to_bits()).unwrap();
    let mut inputs = Vec::new();
    let mut off = first;
    for (i, l) in levels.iter().enumerate() {
        let mut inp = |name: &str, t: &CpuTensor| {
            let id = g.input(&format!("{name}{i}"), &t.shape).unwrap();
            inputs.push((id, t.data.clone()));
            id
        };
        let scores = inp("scores", &l.scores);
        let bbox = inp("bbox", &l.bbox);
        let landmarks = l.landm.as_ref().map(|t| inp("landm", t));
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

fn run_cases(cases: Vec<Case>) {
    for (ci, c) in cases.iter().enumerate() {
        let n = c.images.len();
        let levels: Vec<LevelData> = c
            .levels
            .iter()
            .enumerate()
            .map(|(i, (h, w, s, sz))| {
                let seed = 1000 * ci as u64 + 10 * i as u64;
                random_level(seed, [n, *h, *w], *s, sz, i as u32, c.landmarks, c.delta)
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
        let Some(got) = gpu_rows(&levels, c.gap.0, r, &c.coding, &c.images) else {
            return;
        };
        assert_close(c.name, &got, &want, ATOL, RTOL);
    }
}

#[test]
fn decode_ssd_cases() {
    let fpn = |h: usize, w: usize| {
        vec![
            (h / 8, w / 8, 8, vec![16.0, 32.0]),
            (h / 16, w / 16, 16, vec![64.0, 128.0]),
            (h / 32, w / 32, 32, vec![256.0, 512.0]),
        ]
    };
    run_cases(vec![
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
    ]);
}

#[test]
fn decode_rcnn_cases() {
    run_cases(vec![
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
    ]);
}

/// ssh-vgg16.md §4 table, exactly.
#[test]
fn rcnn_base_anchors_match_spec_table() {
    let got = rcnn_base_anchors(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
    let want: [[f32; 4]; 6] = [
        [0.0, 0.0, 15.0, 15.0],
        [-8.0, -8.0, 23.0, 23.0],
        [-24.0, -24.0, 39.0, 39.0],
        [-56.0, -56.0, 71.0, 71.0],
        [-120.0, -120.0, 135.0, 135.0],
        [-248.0, -248.0, 263.0, 263.0],
    ];
    assert_eq!(got, want);
}

/// Level 1×2, A = 1, scale 2 (anchor [−8, −8, 23, 23]), stride 8, module 1; image H' = 20, W' = 100, s = 2.
/// Cell x = 0, deltas (0, 0, 1, 0): w = h = 23 − (−8) + 1 = 32, cx = cy = −8 + 16 = 8; pw = 32e = 86.98502, ph = 32;
///   x1 = 8 − 43.49251 → clip 0; y1 = 8 − 16 = −8 → 0; x2 = 51.49251; y2 = 24 → clip 19.
///   ÷ 2: [0, 0, 25.74625, 9.5].
/// Cell x = 1 (anchor [0, −8, 31, 23]), deltas (0.25, −0.5, 0, 0): cx = 16, cy = 8; pcx = 0.25·32 + 16 = 24,
///   pcy = −0.5·32 + 8 = −8; x1 = 24 − 16 = 8, y1 = −24 → 0, x2 = 40, y2 = 8. ÷ 2: [4, 0, 20, 4].
#[test]
fn decode_rcnn_hand_computed() {
    let level = LevelData {
        scores: CpuTensor::new(&[1, 1, 1, 2], vec![0.25, 0.75]),
        bbox: CpuTensor::new(
            &[1, 4, 1, 2],
            vec![0.0, 0.25, 0.0, -0.5, 1.0, 0.0, 0.0, 0.0],
        ),
        landm: None,
        stride: 8,
        sizes: vec![2.0],
        module: 1,
    };
    let mut want = vec![0.0f32; 32];
    want[..4].copy_from_slice(&[0.0, 0.0, 25.74625, 9.5]);
    want[14..16].copy_from_slice(&[1.0, 0.25]);
    want[16..20].copy_from_slice(&[4.0, 0.0, 20.0, 4.0]);
    want[30..32].copy_from_slice(&[1.0, 0.75]);
    let images = [image(20, 100, 2.0)];
    let levels = [level];
    // 2e-5 px: the hand value 25.74625 is itself rounded to 1e-5.
    assert_close(
        "rcnn hand (reference)",
        &cpu_rows(&levels, 0, 2, &BoxCoding::Rcnn, &images),
        &want,
        2e-5,
        0.0,
    );
    if let Some(got) = gpu_rows(&levels, 0, 2, &BoxCoding::Rcnn, &images) {
        assert_close("rcnn hand (gpu)", &got, &want, 2e-5, 1e-6);
    }
}

/// Input H = 64, W = 96; level stride 32 (2×3 cells), A = 1, min size 32, variances (0.1, 0.2). Cell (x 1, y 0):
/// prior = [(1.5·32)/96, (0.5·32)/64, 32/96, 32/64] = [0.5, 0.25, 1/3, 0.5], i.e. centre (48, 16) px, size 32×32 px.
/// Deltas (1, −2, 5, 0): cx = 48 + 1·0.1·32 = 51.2 px, cy = 16 − 2·0.1·32 = 9.6 px; w = 32·exp(5·0.2) = 32e = 86.98502,
/// h = 32 → box [51.2 − 43.49251, 9.6 − 16, 51.2 + 43.49251, 9.6 + 16] = [7.70749, −6.4, 94.69251, 25.6] (no clipping).
/// Landmark deltas (1, −1, 0, 0.5, 2, −3, 4, 0, −0.5, 10): l = centre + 3.2·delta (0.1·32 px per unit).
#[test]
fn decode_ssd_hand_computed() {
    let mut bbox = vec![0.0f32; 4 * 6];
    let mut landm = vec![0.0f32; 10 * 6];
    for (j, v) in [1.0, -2.0, 5.0, 0.0].into_iter().enumerate() {
        bbox[j * 6 + 1] = v;
    }
    let ld = [1.0, -1.0, 0.0, 0.5, 2.0, -3.0, 4.0, 0.0, -0.5, 10.0];
    for (j, v) in ld.into_iter().enumerate() {
        landm[j * 6 + 1] = v;
    }
    let level = LevelData {
        scores: CpuTensor::new(&[1, 1, 2, 3], vec![0.0, 0.9, 0.0, 0.0, 0.0, 0.0]),
        bbox: CpuTensor::new(&[1, 4, 2, 3], bbox),
        landm: Some(CpuTensor::new(&[1, 10, 2, 3], landm)),
        stride: 32,
        sizes: vec![32.0],
        module: 2,
    };
    let mut want = vec![7.70749, -6.4, 94.69251, 25.6];
    for (j, d) in ld.into_iter().enumerate() {
        want.push(if j % 2 == 0 { 48.0 } else { 16.0 } + 3.2 * d);
    }
    want.extend([2.0, 0.9]);
    let images = [image(64, 96, 1.0)];
    let levels = [level];
    // 3e-5 px: hand values rounded to 1e-5; 1/3 and 0.1 are inexact in f32 (~1e-6 relative).
    let cpu = cpu_rows(&levels, 0, 6, &SSD, &images);
    assert_close("ssd hand (reference)", &cpu[16..32], &want, 3e-5, 1e-6);
    if let Some(got) = gpu_rows(&levels, 0, 6, &SSD, &images) {
        assert_close("ssd hand (gpu)", &got[16..32], &want, 3e-5, 1e-6);
    }
}
