//! softmax2.wgsl vs reference::softmax2 (f64 softmax rounded to f32). The target is the f64 face probability
//! within atol 1e-6: the shader's exp and division errors (a few ulp of values ≤ 1) stay near 1e-7.
//!
//! f16 logits (softmax2_f16.wgsl), f32 probabilities out: the tables run again on logits rounded to f16, the
//! reference on the same rounded values. The shader widens them and computes exactly as at f32 into an f32
//! output, so nothing is added: atol 1e-6 still.

use super::f16_maps::{check_at, dtypes, stored};
use crate::common::*;
use sshface::gpu::{DType, Graph};
use sshface::ops::softmax2::{softmax2, ClassLayout};
use sshface::reference::softmax2::softmax2 as reference;
use sshface::reference::CpuTensor;

const ATOL: f32 = 1e-6;

/// Softmax of logits `data` stored as `dtype` (f16: rounded on the write); probabilities are f32 either way.
fn run(shape: &[usize], layout: ClassLayout, data: &[f32], dtype: DType) -> Vec<f32> {
    let ctx = gpu().expect("checked by caller");
    let mut g = Graph::new();
    let x = g.input_as("m1_cls_score", shape, dtype).unwrap();
    let out = softmax2(&mut g, "m1_cls_prob", x, layout).unwrap();
    assert_eq!(g.dtype(out), DType::F32, "probabilities are f32");
    g.mark_output(out);
    assert_eq!(g.shape(out), [shape[0], shape[1] / 2, shape[2], shape[3]]);
    run_graph(ctx, g, &[(x, data)], &[out]).remove(0)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The case table at logits of `dtype`.
fn check_cases(dtype: DType) {
    use ClassLayout::*;
    let cases: &[(&str, [usize; 4], ClassLayout)] = &[
        ("ssh class-major A=2, 17x34", [1, 4, 17, 34], ClassMajor),
        ("ssh class-major A=3, batch 2", [2, 6, 9, 13], ClassMajor),
        (
            "retinaface interleaved A=2, 17x34",
            [1, 4, 17, 34],
            Interleaved,
        ),
        (
            "retinaface interleaved A=3, batch 2",
            [2, 6, 9, 13],
            Interleaved,
        ),
        ("A=1, 1x1", [1, 2, 1, 1], ClassMajor),
        ("A=1, 1x1 interleaved", [2, 2, 1, 1], Interleaved),
        // No 2-D dispatch case: more than 65,535·256 outputs needs logits over lavapipe's 128 MiB binding.
    ];
    for (i, (name, shape, layout)) in cases.iter().enumerate() {
        let n: usize = shape.iter().product();
        let data = stored(dtype, rand_vec(91 + i as u64, n, -12.0, 12.0));
        let got = run(shape, *layout, &data, dtype);
        let x = CpuTensor::new(shape, data);
        let want = reference(&x, *layout);
        let name = &format!("{name} [{dtype:?}]");
        assert_close(name, &got, &want.data, ATOL, 0.0);
        // The pairing matters: the other layout's reference must fail this case (A > 1 only, as A = 1 agrees).
        if shape[1] > 2 {
            let other = if *layout == ClassMajor {
                Interleaved
            } else {
                ClassMajor
            };
            let wrong = reference(&x, other);
            assert!(
                max_diff(&got, &wrong.data) > 0.1,
                "{name}: layouts not told apart"
            );
        }
    }
}

#[test]
fn softmax2_cases() {
    check_at(DType::F32, check_cases);
}

#[test]
fn softmax2_f16_cases() {
    check_at(DType::F16, check_cases);
}

/// At f32 and f16 logits (all pairs but 1e-3 are exact in f16; the want uses the stored values).
#[test]
fn softmax2_saturates() {
    let Some(ctx) = gpu() else { return };
    for dtype in dtypes(ctx) {
        saturates(dtype);
    }
}

fn saturates(dtype: DType) {
    // (background, face) logit pairs; ±100 overflow exp in f32 unless the max is subtracted.
    let pairs: &[(f32, f32)] = &[
        (-100.0, 100.0),
        (100.0, -100.0),
        (100.0, 100.0),
        (-100.0, -100.0),
        (0.0, 100.0),
        (100.0, 0.0),
        (-100.0, 0.0),
        (0.0, -100.0),
        (88.0, -88.0),
        (17.0, 0.0),
        (0.0, 17.0),
        (1e-3, 0.0),
        (0.0, 0.0),
    ];
    let a = pairs.len();
    for layout in [ClassLayout::ClassMajor, ClassLayout::Interleaved] {
        // One position, A = pairs.len() anchors.
        let mut data = vec![0.0; 2 * a];
        for (k, &(l0, l1)) in pairs.iter().enumerate() {
            let [c0, c1] = layout.channels(k, a);
            data[c0] = l0;
            data[c1] = l1;
        }
        let data = stored(dtype, data);
        let got = run(&[1, 2 * a, 1, 1], layout, &data, dtype);
        let want: Vec<f32> = (0..a)
            .map(|k| {
                let [c0, c1] = layout.channels(k, a);
                (1.0 / (1.0 + (data[c0] as f64 - data[c1] as f64).exp())) as f32
            })
            .collect();
        let case = format!("saturation {layout:?} [{dtype:?}]");
        assert!(got.iter().all(|v| v.is_finite()), "{case}: {got:?}");
        assert_close(&case, &got, &want, ATOL, 0.0);
        assert_eq!(got[0], 1.0, "{case}: p(face | -100, 100)");
        assert_eq!(got[1], 0.0, "{case}: p(face | 100, -100)");
        assert_eq!(got[2], 0.5, "{case}: equal logits");
    }
}

#[test]
fn softmax2_reference_matches_hand_values() {
    // ln 3 makes p = 3/4 exactly representable.
    let l = 3.0f32.ln();
    let x = CpuTensor::new(&[1, 2, 1, 1], vec![0.0, l]);
    let p = reference(&x, ClassLayout::ClassMajor).data[0];
    assert!((p - 0.75).abs() < 1e-7, "{p}");
    // Class-major with A = 2: channels [bg0, bg1, face0, face1].
    let x = CpuTensor::new(&[1, 4, 1, 1], vec![0.0, 0.0, l, -l]);
    let p = reference(&x, ClassLayout::ClassMajor).data;
    assert!(
        (p[0] - 0.75).abs() < 1e-7 && (p[1] - 0.25).abs() < 1e-7,
        "{p:?}"
    );
    // Interleaved with A = 2: channels [bg0, face0, bg1, face1].
    let x = CpuTensor::new(&[1, 4, 1, 1], vec![0.0, l, 0.0, -l]);
    let p = reference(&x, ClassLayout::Interleaved).data;
    assert!(
        (p[0] - 0.75).abs() < 1e-7 && (p[1] - 0.25).abs() < 1e-7,
        "{p:?}"
    );
}

#[test]
fn softmax2_rejects_odd_channels() {
    let mut g = Graph::new();
    let x = g.input("m3_cls_score", &[1, 5, 4, 4]).unwrap();
    let e = softmax2(&mut g, "m3_cls_prob", x, ClassLayout::ClassMajor)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m3_cls_prob") && e.contains("5 channels") && e.contains("[1, 5, 4, 4]"),
        "{e}"
    );
}
