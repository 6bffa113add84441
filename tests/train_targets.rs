//! Anchor assignment of SSH training: the CPU reference (src/train/targets.rs) on hand-built cases with known
//! labels, its targets decoded back to the GT, and `shaders/anchor_targets.wgsl` against it.

mod common;

use common::*;
use rand::Rng;
use sshface::gpu::Graph;
use sshface::ops::anchor_targets::anchor_targets as gpu_targets;
use sshface::ops::decode::{BoxCoding, DecodeImage};
use sshface::reference::decode::{decode, CpuLevel};
use sshface::reference::CpuTensor;
use sshface::train::targets::*;

/// Label of anchor a at (x, y).
fn label(t: &Targets, grid: &AnchorGrid, a: usize, x: usize, y: usize) -> f32 {
    let [h, w] = grid.map_hw;
    t.labels[a * h * w + y * w + x]
}

#[test]
fn gt_boxes_clamp_and_drop() {
    let faces = [
        [10.0, 20.0, 30.0, 40.0], // kept as is
        [-5.0, -6.0, 20.0, 20.0], // clamped to 0
        [90.0, 50.0, 30.0, 30.0], // clamped to W−1, H−1
        [5.0, 5.0, 0.5, 10.0],    // too narrow
        [99.5, 5.0, 10.0, 10.0],  // narrow after the clamp
        [5.0, 5.0, 10.0, 0.0],    // no height
    ];
    let got = gt_boxes(&faces, [64, 100]);
    assert_eq!(
        got,
        vec![
            [10.0, 20.0, 40.0, 60.0],
            [0.0, 0.0, 15.0, 14.0],
            [90.0, 50.0, 99.0, 63.0]
        ]
    );
}

#[test]
fn anchors_match_the_spec_grid() {
    let g = AnchorGrid::ssh(0, [4, 4], [32, 32]);
    assert_eq!(g.anchor(0, 0, 0), [0.0, 0.0, 15.0, 15.0]);
    assert_eq!(g.anchor(1, 0, 0), [-8.0, -8.0, 23.0, 23.0]);
    assert_eq!(g.anchor(0, 2, 1), [16.0, 8.0, 31.0, 23.0]);
    assert_eq!(
        AnchorGrid::ssh(1, [1, 1], [1, 1]).anchor(0, 0, 0),
        [-24.0, -24.0, 39.0, 39.0]
    );
    assert_eq!(
        AnchorGrid::ssh(2, [1, 1], [1, 1]).anchor(1, 0, 0),
        [-248.0, -248.0, 263.0, 263.0]
    );
}

#[test]
fn exact_iou_thresholds() {
    let grid = AnchorGrid::ssh(0, [8, 8], [64, 64]);
    // Anchor (0, 0, 0) is [0, 0, 15, 15], area 256.
    let at = |gt: [f32; 4]| label(&anchor_targets(&grid, &[gt]), &grid, 0, 0, 0);
    assert_eq!(iou([0.0, 0.0, 15.0, 15.0], [0.0, 0.0, 15.0, 7.0]), 0.5);
    assert_eq!(
        at([0.0, 0.0, 15.0, 7.0]),
        1.0,
        "IoU exactly 0.5 is positive"
    );
    assert_eq!(at([0.0, 0.0, 15.0, 6.0]), -1.0, "IoU 0.4375 is ignored");
    // 16·12 / (256 + 48·12 − 192) = 192/640 = 0.3 exactly.
    assert_eq!(iou([0.0, 0.0, 15.0, 15.0], [0.0, 0.0, 47.0, 11.0]), 0.3);
    assert_eq!(
        at([0.0, 0.0, 47.0, 11.0]),
        -1.0,
        "IoU exactly 0.3 is ignored"
    );
    assert_eq!(
        at([0.0, 0.0, 48.0, 11.0]),
        0.0,
        "IoU 192/652 < 0.3 is negative"
    );
    assert_eq!(at([40.0, 40.0, 50.0, 50.0]), 0.0, "no overlap is negative");
    let t = anchor_targets(&grid, &[]);
    let inside = |a: usize, x: usize, y: usize| grid.inside(grid.anchor(a, x, y));
    for a in 0..2 {
        for y in 0..8 {
            for x in 0..8 {
                let want = if inside(a, x, y) { 0.0 } else { -1.0 };
                assert_eq!(label(&t, &grid, a, x, y), want, "no GT: a {a} ({x}, {y})");
            }
        }
    }
    assert!(t.inside_weights.iter().all(|&v| v == 0.0));
}

#[test]
fn border_rules_per_module() {
    // M1 on a 32x32 image: [16, 16, 31, 31] is inside (x2 = W − 1), [24, 24, 39, 39] is not.
    let m1 = AnchorGrid::ssh(0, [5, 5], [32, 32]);
    let t = anchor_targets(&m1, &[]);
    assert_eq!(label(&t, &m1, 0, 2, 2), 0.0);
    assert_eq!(label(&t, &m1, 0, 3, 2), -1.0);
    assert_eq!(label(&t, &m1, 1, 1, 1), 0.0, "[0, 0, 31, 31]");
    assert_eq!(label(&t, &m1, 1, 0, 0), -1.0, "x1 = −8");
    // A face covering the outside anchor still leaves it ignored.
    let t = anchor_targets(&m1, &[[24.0, 24.0, 31.0, 31.0]]);
    assert_eq!(label(&t, &m1, 0, 3, 3), -1.0);
    // M2 border 0: [-24, -24, 39, 39] out, [8, 8, 71, 71] in on 80x80.
    let m2 = AnchorGrid::ssh(1, [5, 5], [80, 80]);
    let t = anchor_targets(&m2, &[]);
    assert_eq!(label(&t, &m2, 0, 0, 0), -1.0);
    assert_eq!(label(&t, &m2, 0, 2, 2), 0.0);
    // M3 border 512: [-248, -248, 263, 263] in on 64x64; x2 < W + 512 decides at the far side.
    let m3 = AnchorGrid::ssh(2, [40, 40], [64, 64]);
    let t = anchor_targets(&m3, &[]);
    assert_eq!(label(&t, &m3, 1, 0, 0), 0.0);
    // anchor 1 at x: x2 = 263 + 32x < 576 ⇔ x ≤ 9.
    assert_eq!(label(&t, &m3, 1, 9, 0), 0.0);
    assert_eq!(label(&t, &m3, 1, 10, 0), -1.0);
    assert_eq!(label(&t, &m3, 0, 0, 0), 0.0, "[-120, -120, 135, 135]");
}

#[test]
fn face_matching_no_anchor_gets_no_positive() {
    // A 10x10 face between M1 anchors: best IoU 100/256 < 0.5, no forced positive.
    let grid = AnchorGrid::ssh(0, [8, 8], [64, 64]);
    let t = anchor_targets(&grid, &[[20.0, 20.0, 29.0, 29.0]]);
    assert!(t.labels.iter().all(|&v| v != 1.0));
    assert!(t.labels.contains(&-1.0));
}

/// Positive targets decode (reference decode, Rcnn) back to the best GT box.
#[test]
fn targets_invert_through_decode() {
    let grid = AnchorGrid::ssh(0, [12, 10], [96, 80]);
    let gt = [
        [8.0, 8.0, 23.0, 25.0],
        [40.0, 30.0, 70.0, 62.0],
        [3.0, 50.0, 20.0, 66.0],
    ];
    let t = anchor_targets(&grid, &gt);
    let [h, w] = grid.map_hw;
    let scores = CpuTensor::new(&[1, 2, h, w], vec![0.5; 2 * h * w]);
    let bbox = CpuTensor::new(&[1, 8, h, w], t.bbox_targets.clone());
    let level = CpuLevel {
        scores: &scores,
        bbox: &bbox,
        landmarks: None,
        stride: 8,
        anchor_sizes: grid.scales,
        module: 0,
    };
    let im = DecodeImage {
        input_hw: [96, 80],
        scale: 1.0,
    };
    let rows = decode(&level, &BoxCoding::Rcnn, &[im]);
    let mut positives = 0;
    for a in 0..2 {
        for y in 0..h {
            for x in 0..w {
                if label(&t, &grid, a, x, y) != 1.0 {
                    continue;
                }
                positives += 1;
                let anc = grid.anchor(a, x, y);
                let best = gt.iter().copied().fold((-1.0, gt[0]), |b, g| {
                    let o = iou(anc, g);
                    if o > b.0 {
                        (o, g)
                    } else {
                        b
                    }
                });
                // Decode adds 0.5·w to the centre and subtracts 0.5·w, so x2 comes back as x2 + 1.
                let r = rows[(y * w + x) * 2 + a];
                let got = [r[0], r[1], r[2] - 1.0, r[3] - 1.0];
                assert_close(&format!("a {a} ({x}, {y})"), &got, &best.1, 1e-3, 1e-5);
            }
        }
    }
    assert!(positives >= 3, "{positives} positives");
}

/// Random GT boxes with integer coordinates (exact IoU products on both sides).
fn random_gt(seed: u64, n: usize, hw: [usize; 2], max_side: i32) -> Vec<[f32; 4]> {
    let mut r = rng(seed);
    let faces: Vec<[f32; 4]> = (0..n)
        .map(|_| {
            let s = r.random_range(4..max_side) as f32;
            let x = r.random_range(-20..hw[1] as i32) as f32;
            let y = r.random_range(-20..hw[0] as i32) as f32;
            let asp = r.random_range(6..14) as f32 / 10.0;
            [x, y, s, (s * asp).round()]
        })
        .collect();
    gt_boxes(&faces, hw)
}

#[test]
fn gpu_matches_cpu_reference() {
    let Some(ctx) = gpu() else { return };
    let cases: &[(usize, [usize; 2], usize)] = &[
        (0, [97, 131], 12),
        (1, [97, 131], 7),
        (2, [97, 131], 5),
        (0, [61, 45], 0),
        (2, [250, 301], 20),
        (2, [540, 613], 12),
        (1, [33, 17], 1),
    ];
    for (i, &(m, image_hw, n)) in cases.iter().enumerate() {
        let stride = [8, 16, 32][m];
        let map_hw = image_hw.map(|v| v.div_ceil(stride));
        let grid = AnchorGrid::ssh(m, map_hw, image_hw);
        let gt = random_gt(100 + i as u64, n, image_hw, 25 * stride as i32);
        let want = anchor_targets(&grid, &gt);
        let mut g = Graph::new();
        let rows = gt.len().max(1);
        let gt_t = g.input("gt_boxes", &[rows, 4]).unwrap();
        let out = gpu_targets(&mut g, "m_targets", gt_t, gt.len(), &grid).unwrap();
        for t in [out.labels, out.bbox_targets, out.inside_weights] {
            g.mark_output(t);
        }
        let mut flat: Vec<f32> = gt.iter().flatten().copied().collect();
        flat.resize(rows * 4, 0.0);
        let got = run_graph(
            ctx,
            g,
            &[(gt_t, &flat)],
            &[out.labels, out.bbox_targets, out.inside_weights],
        );
        let name = format!("case {i}: M{} {image_hw:?} {} GT", m + 1, gt.len());
        assert_eq!(got[0], want.labels, "{name}: labels");
        assert_eq!(got[2], want.inside_weights, "{name}: weights");
        assert_close(&name, &got[1], &want.bbox_targets, 1e-5, 1e-5);
        if n > 3 && (m < 2 || image_hw[0] > 500) {
            assert!(want.labels.contains(&1.0), "{name}: has positives");
        }
    }
}
