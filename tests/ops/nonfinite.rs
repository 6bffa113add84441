//! Non-finite numbers reaching softmax2.wgsl and decode.wgsl (an overflowed head: inf, or inf − inf = NaN): the
//! shader marks the anchor with a NaN score exactly where the reference does, and where the rules written out by
//! hand below say, so selection drops it; finite rows are unchanged. Selection ranking NaN below every score is
//! checked in `nms.rs`; the networks end to end with crafted overflowing weights in `tests/nonfinite.rs`.

use super::decode::{cpu_rows, gpu_rows, image, LevelData, SSD};
use crate::common::*;
use sshface::gpu::{DType, Graph};
use sshface::ops::decode::BoxCoding;
use sshface::ops::softmax2::{softmax2, ClassLayout};
use sshface::reference::softmax2::softmax2 as reference_softmax;
use sshface::reference::CpuTensor;

/// What anchor `i` of the crafted level carries, cycling over seven kinds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// dw = 1e30: exp overflows to an infinite width.
    HugeWidth,
    /// dx = +inf.
    InfShift,
    /// dx = NaN (from an earlier layer's inf − inf).
    NanShift,
    /// dx = +inf and dw = 1e30: inf − inf in the corners.
    InfMinusInf,
    /// dh = −1e30: exp underflows to a zero height (finite); landmark deltas +inf where the level has them.
    ZeroHeight,
    /// score NaN (softmax of an overflowed logit).
    NanScore,
    /// nothing unusual.
    Plain,
}

const KINDS: [Kind; 7] = [
    Kind::HugeWidth,
    Kind::InfShift,
    Kind::NanShift,
    Kind::InfMinusInf,
    Kind::ZeroHeight,
    Kind::NanScore,
    Kind::Plain,
];

/// Whether a row of `kind` must be dropped, from the decode formulas by hand: SSD (retinaface) has no clip, so any
/// infinite or NaN value is non-finite in the row; R-CNN (ssh-vgg16) clips infinite corners to the border as numpy
/// does, so only NaN before the clip (inf − inf) drops a row.
fn dropped(kind: Kind, coding: &BoxCoding, landmarks: bool) -> bool {
    let ssd = matches!(coding, BoxCoding::Ssd { .. });
    match kind {
        Kind::HugeWidth | Kind::InfShift => ssd,
        Kind::NanShift | Kind::InfMinusInf | Kind::NanScore => true,
        Kind::ZeroHeight => ssd && landmarks,
        Kind::Plain => false,
    }
}

/// One level `[1, A, h, w]` whose anchor i (in the reference's row order: y, x, a) carries `KINDS[i % 7]`.
fn crafted(h: usize, w: usize, stride: usize, sizes: &[f32], landmarks: bool) -> LevelData {
    let a = sizes.len();
    let at = |c: usize, y: usize, x: usize| (c * h + y) * w + x;
    let mut scores = vec![0.9f32; a * h * w];
    let mut bbox = rand_vec(5, 4 * a * h * w, -0.5, 0.5);
    let mut landm = rand_vec(6, 10 * a * h * w, -1.0, 1.0);
    for y in 0..h {
        for x in 0..w {
            for k in 0..a {
                let i = (y * w + x) * a + k;
                let b = |j: usize| at(4 * k + j, y, x);
                match KINDS[i % 7] {
                    Kind::HugeWidth => bbox[b(2)] = 1e30,
                    Kind::InfShift => bbox[b(0)] = f32::INFINITY,
                    Kind::NanShift => bbox[b(0)] = f32::NAN,
                    Kind::InfMinusInf => {
                        bbox[b(0)] = f32::INFINITY;
                        bbox[b(2)] = 1e30;
                    }
                    Kind::ZeroHeight => {
                        bbox[b(3)] = -1e30;
                        landm[at(10 * k + 3, y, x)] = f32::INFINITY;
                    }
                    Kind::NanScore => scores[at(k, y, x)] = f32::NAN,
                    Kind::Plain => {}
                }
            }
        }
    }
    LevelData {
        scores: CpuTensor::new(&[1, a, h, w], scores),
        bbox: CpuTensor::new(&[1, 4 * a, h, w], bbox),
        landm: landmarks.then(|| CpuTensor::new(&[1, 10 * a, h, w], landm)),
        stride,
        sizes: sizes.to_vec(),
        module: 0,
    }
}

fn check_decode(name: &str, coding: BoxCoding, landmarks: bool) {
    let (h, w, stride, sizes) = (5, 6, 16, [32.0f32, 64.0]);
    let level = crafted(h, w, stride, &sizes, landmarks);
    let images = [image(h * stride, w * stride, 1.0)];
    let n_rows = h * w * sizes.len();
    let want = cpu_rows(std::slice::from_ref(&level), 0, n_rows, &coding, &images);
    let Some(got) = gpu_rows(
        std::slice::from_ref(&level),
        0,
        n_rows,
        &coding,
        &images,
        DType::F32,
    ) else {
        return;
    };
    let mut kept = 0;
    for i in 0..n_rows {
        let kind = KINDS[i % 7];
        let (g, r) = (&got[16 * i..16 * i + 16], &want[16 * i..16 * i + 16]);
        let expect = dropped(kind, &coding, landmarks);
        assert_eq!(
            r[15].is_nan(),
            expect,
            "{name}: reference row {i} ({kind:?}): {r:?}"
        );
        assert_eq!(
            g[15].is_nan(),
            expect,
            "{name}: GPU row {i} ({kind:?}): {g:?}"
        );
        if !expect {
            assert!(
                g.iter().all(|v| v.is_finite()),
                "{name}: row {i} ({kind:?}) kept with {g:?}"
            );
            assert_close(&format!("{name}: row {i} ({kind:?})"), g, r, 1e-4, 1e-5);
            kept += 1;
        }
    }
    assert!(
        kept > 0 && kept < n_rows,
        "{name}: {kept} of {n_rows} rows kept"
    );
}

#[test]
fn decode_drops_rows_with_non_finite_values_ssd() {
    check_decode("ssd with landmarks", SSD, true);
    check_decode("ssd without landmarks", SSD, false);
}

#[test]
fn decode_drops_rows_with_nan_before_the_clip_rcnn() {
    check_decode("rcnn", BoxCoding::Rcnn, false);
}

#[test]
fn softmax_of_non_finite_logits_is_nan() {
    let Some(ctx) = gpu() else { return };
    // (l0, l1, whether the probability is NaN): any non-finite logit; huge finite ones are fine.
    let pairs: [(f32, f32, bool); 8] = [
        (0.5, 2.0, false),
        (3e38, 3e38, false),
        (-3e38, 3e38, false),
        (f32::INFINITY, 1.0, true),
        (1.0, f32::INFINITY, true),
        (f32::NEG_INFINITY, 1.0, true),
        (f32::INFINITY, f32::INFINITY, true),
        (f32::NAN, 0.0, true),
    ];
    for layout in [ClassLayout::ClassMajor, ClassLayout::Interleaved] {
        // A = 1, one anchor per position: [1, 2, 1, 8].
        let shape = [1, 2, 1, pairs.len()];
        let mut data = vec![0.0f32; 2 * pairs.len()];
        for (x, &(l0, l1, _)) in pairs.iter().enumerate() {
            let [c0, c1] = layout.channels(0, 1);
            data[c0 * pairs.len() + x] = l0;
            data[c1 * pairs.len() + x] = l1;
        }
        let mut g = Graph::new();
        let t = g.input("logits", &shape).unwrap();
        let out = softmax2(&mut g, "cls_prob", t, layout).unwrap();
        g.mark_output(out);
        let got = run_graph(ctx, g, &[(t, &data)], &[out]).remove(0);
        let want = reference_softmax(&CpuTensor::new(&shape, data.clone()), layout).data;
        for (x, &(l0, l1, nan)) in pairs.iter().enumerate() {
            assert_eq!(
                want[x].is_nan(),
                nan,
                "reference softmax({l0}, {l1}) = {}",
                want[x]
            );
            assert_eq!(got[x].is_nan(), nan, "GPU softmax({l0}, {l1}) = {}", got[x]);
            if !nan {
                assert!(
                    (got[x] - want[x]).abs() <= 1e-6,
                    "softmax({l0}, {l1}): {} vs {}",
                    got[x],
                    want[x]
                );
            }
        }
    }
}
