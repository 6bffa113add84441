//! decode on hand-computed rows (both box codings, values worked out in each test's doc) and the spec's
//! anchor table. The GPU runs at f32 and at f16 bbox/landmark maps: every delta here is exact in f16, so
//! both must give the same rows within the tolerance stated at each check.

use super::decode::{cpu_rows, gpu_rows, image, LevelData, SSD};
use super::f16_maps::dtypes;
use crate::common::*;
use sshface::model::anchors::rcnn_base_anchors;
use sshface::ops::decode::BoxCoding;
use sshface::reference::CpuTensor;

/// docs/spec/ssh-vgg16.md §4 table, exactly.
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
    for maps in gpu().map(dtypes).unwrap_or_default() {
        let got = gpu_rows(&levels, 0, 2, &BoxCoding::Rcnn, &images, maps).unwrap();
        assert_close(
            &format!("rcnn hand (gpu, {maps:?})"),
            &got,
            &want,
            2e-5,
            1e-6,
        );
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
    for maps in gpu().map(dtypes).unwrap_or_default() {
        let got = gpu_rows(&levels, 0, 6, &SSD, &images, maps).unwrap();
        assert_close(
            &format!("ssd hand (gpu, {maps:?})"),
            &got[16..32],
            &want,
            3e-5,
            1e-6,
        );
    }
}
