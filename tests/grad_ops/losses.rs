//! softmax_loss.wgsl and smooth_l1.wgsl vs their f64 references, and the references' gradients vs central
//! finite differences of their own f64 losses.
//!
//! Tolerance: the shaders sum a few hundred f32 terms in a tree against f64 sums: losses rtol 1e-5; per
//! element gradients are a handful of f32 operations: atol 1e-6.

use super::finite_diff::{assert_fd, central, grid_vec, probe};
use crate::common::*;
use rand::Rng;
use sshface::gpu::Graph;
use sshface::ops::smooth_l1::{smooth_l1, SSH_SIGMA};
use sshface::ops::softmax2::ClassLayout;
use sshface::ops::softmax_loss::softmax_loss;
use sshface::reference::smooth_l1::smooth_l1 as sl1_ref;
use sshface::reference::softmax_loss::softmax_loss as sm_ref;
use sshface::reference::CpuTensor;

/// Labels −1, 0 or 1 with the given share of ignored ones.
fn labels(seed: u64, n: usize, ignored: f64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            if r.random_bool(ignored) {
                -1.0
            } else {
                r.random_range(0..=1) as f32
            }
        })
        .collect()
}

/// Returns (loss, count, gradient) from the shader.
fn run_softmax(
    shape: [usize; 4],
    layout: ClassLayout,
    logits: &[f32],
    lab: &[f32],
) -> (f32, f32, Vec<f32>) {
    let ctx = gpu().expect("checked by caller");
    let mut g = Graph::new();
    let l = g.input("m1_cls_score", &shape).unwrap();
    let t = g
        .input("m1_labels", &[shape[0], shape[1] / 2, shape[2], shape[3]])
        .unwrap();
    let out = softmax_loss(&mut g, "m1_cls_loss", l, t, layout).unwrap();
    g.mark_output(out.stats);
    g.mark_output(out.grad);
    let got = run_graph(ctx, g, &[(l, logits), (t, lab)], &[out.stats, out.grad]);
    (got[0][0], got[0][1], got[1].clone())
}

#[test]
fn softmax_loss_cases() {
    if gpu().is_none() {
        return;
    }
    use ClassLayout::*;
    let cases: &[(&str, [usize; 4], ClassLayout, f64)] = &[
        ("ssh class-major A=2 5x7", [1, 4, 5, 7], ClassMajor, 0.3),
        ("ssh class-major A=3 batch 2", [2, 6, 3, 5], ClassMajor, 0.5),
        ("interleaved A=2 batch 2", [2, 4, 5, 3], Interleaved, 0.3),
        (
            "M1-like 2x150... scaled down: A=2 31x41",
            [1, 4, 31, 41],
            ClassMajor,
            0.9,
        ),
        ("every anchor ignored", [1, 4, 3, 3], ClassMajor, 1.0),
        ("none ignored", [1, 2, 4, 5], ClassMajor, 0.0),
    ];
    for (i, &(name, shape, layout, ign)) in cases.iter().enumerate() {
        let n: usize = shape.iter().product();
        let logits = rand_vec(20 + i as u64, n, -6.0, 6.0);
        let lab = labels(30 + i as u64, n / 2, ign);
        let (loss, count, grad) = run_softmax(shape, layout, &logits, &lab);
        let (want_loss, want_count, want_grad) =
            sm_ref(&CpuTensor::new(&shape, logits), &lab, layout);
        assert_eq!(count as usize, want_count, "{name}: count");
        assert_close(
            &format!("{name} loss"),
            &[loss],
            &[want_loss as f32],
            1e-6,
            1e-5,
        );
        assert_close(&format!("{name} grad"), &grad, &want_grad.data, 1e-6, 0.0);
        if ign == 1.0 {
            assert_eq!((loss, count), (0.0, 0.0), "{name}");
            assert!(grad.iter().all(|&v| v == 0.0), "{name}: gradient");
        }
    }
}

#[test]
fn softmax_loss_saturates_and_flags_bad_labels() {
    if gpu().is_none() {
        return;
    }
    // Face logit far below background for a face label: p underflows, Caffe clamps it at FLT_MIN.
    let (loss, count, grad) = run_softmax(
        [1, 2, 1, 2],
        ClassLayout::ClassMajor,
        &[100.0, 0.0, -100.0, 0.0],
        &[1.0, -1.0],
    );
    assert_eq!(count, 1.0);
    assert!((loss - 87.336_55).abs() < 1e-3, "loss {loss}");
    assert_eq!(grad, [1.0, 0.0, -1.0, 0.0]);
    // A label that is none of −1, 0, 1 makes the loss NaN instead of training on it.
    let (loss, _, grad) = run_softmax(
        [1, 2, 1, 2],
        ClassLayout::ClassMajor,
        &[0.0; 4],
        &[2.0, 0.0],
    );
    assert!(
        loss.is_nan() && grad[0].is_nan() && !grad[1].is_nan(),
        "{loss} {grad:?}"
    );
}

#[test]
fn softmax_loss_reference_matches_finite_differences() {
    for (i, layout) in [ClassLayout::ClassMajor, ClassLayout::Interleaved]
        .into_iter()
        .enumerate()
    {
        let shape = [2, 6, 3, 4];
        let mut logits = grid_vec(i as u64, shape.iter().product(), -4.0, 4.0, 10);
        let lab = labels(5 + i as u64, 72, 0.3);
        let (_, _, grad) = sm_ref(&CpuTensor::new(&shape, logits.clone()), &lab, layout);
        let idx = probe(0, logits.len(), 144);
        let num = central(&mut logits, &idx, 1.0 / 1024.0, |v| {
            sm_ref(&CpuTensor::new(&shape, v.to_vec()), &lab, layout).0
        });
        assert_fd(
            &format!("softmax loss {layout:?}"),
            &idx,
            &grad.data,
            &num,
            1e-5,
            1e-4,
        );
    }
}

#[test]
fn softmax_loss_rejects_bad_shapes() {
    let mut g = Graph::new();
    let l = g.input("m2_cls_score", &[1, 4, 5, 5]).unwrap();
    let t = g.input("m2_labels", &[1, 4, 5, 5]).unwrap();
    let e = softmax_loss(&mut g, "m2_cls_loss", l, t, ClassLayout::ClassMajor)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m2_cls_loss") && e.contains("m2_labels") && e.contains("[1, 2, 5, 5]"),
        "{e}"
    );
    let odd = g.input("odd", &[1, 3, 5, 5]).unwrap();
    let e = softmax_loss(&mut g, "m2_cls_loss", odd, t, ClassLayout::ClassMajor)
        .unwrap_err()
        .to_string();
    assert!(e.contains("odd") && e.contains("[1, 3, 5, 5]"), "{e}");
}

/// Box-regression-like data: differences spanning both sides of 1/σ² = 1/9, inside weights 0 or 1
/// (negatives / positives) and a few fractional ones, outside weights 1/num_sampled-like.
fn sl1_data(seed: u64, n: usize) -> [Vec<f32>; 4] {
    let mut r = rng(seed);
    let pred = grid_vec(seed, n, -0.6, 0.6, 12);
    let target = grid_vec(seed + 1, n, -0.6, 0.6, 12);
    let w_in = (0..n)
        .map(|_| [0.0, 1.0, 1.0, 0.5][r.random_range(0..4)])
        .collect();
    let w_out = (0..n).map(|_| r.random_range(0.0..0.05)).collect();
    [pred, target, w_in, w_out]
}

#[test]
fn smooth_l1_cases() {
    let Some(ctx) = gpu() else { return };
    for (i, (name, shape)) in [
        ("A=2 5x7", [1, 8, 5, 7]),
        ("A=3 batch 2 odd", [2, 12, 3, 5]),
        ("batch 3 1x1", [3, 4, 1, 1]),
    ]
    .into_iter()
    .enumerate()
    {
        let n: usize = shape.iter().product();
        let [pred, target, w_in, w_out] = sl1_data(70 + i as u64, n);
        let mut g = Graph::new();
        let ids: Vec<_> = [
            "m3_bbox_pred",
            "m3_bbox_targets",
            "m3_inside_w",
            "m3_outside_w",
        ]
        .iter()
        .map(|s| g.input(s, &shape).unwrap())
        .collect();
        let out = smooth_l1(
            &mut g,
            "m3_bbox_loss",
            [ids[0], ids[1], ids[2], ids[3]],
            SSH_SIGMA,
        )
        .unwrap();
        g.mark_output(out.loss);
        g.mark_output(out.grad);
        let inputs: Vec<_> = ids
            .iter()
            .copied()
            .zip([&pred[..], &target, &w_in, &w_out])
            .collect();
        let got = run_graph(ctx, g, &inputs, &[out.loss, out.grad]);
        let (want_loss, want_grad) =
            sl1_ref(&pred, &target, &w_in, &w_out, shape[0], SSH_SIGMA as f64);
        assert_close(
            &format!("{name} loss"),
            &got[0],
            &[want_loss as f32],
            1e-7,
            1e-5,
        );
        assert_close(&format!("{name} grad"), &got[1], &want_grad, 1e-7, 1e-6);
        let quad = pred
            .iter()
            .zip(&target)
            .zip(&w_in)
            .filter(|((p, t), w)| (*w * (*p - *t)).abs() < 1.0 / 9.0 && **w > 0.0)
            .count();
        assert!(
            quad > 0 && quad < n / 2,
            "{name}: both regions covered ({quad} of {n} quadratic)"
        );
    }
}

#[test]
fn smooth_l1_reference_matches_finite_differences() {
    let n = 300;
    let [mut pred, target, w_in, w_out] = sl1_data(3, n);
    let h = 1.0 / 4096.0;
    let (_, grad) = sl1_ref(&pred, &target, &w_in, &w_out, 2, 3.0);
    // Skip the elements whose step crosses the kink at |d| = 1/9 (f is C¹ there, but not C²).
    let idx: Vec<usize> = probe(0, n, n)
        .into_iter()
        .filter(|&i| {
            ((w_in[i] * (pred[i] - target[i])).abs() - 1.0 / 9.0).abs() > 2.0 * h * w_in[i]
        })
        .collect();
    assert!(idx.len() > n * 9 / 10);
    let num = central(&mut pred, &idx, h, |p| {
        sl1_ref(p, &target, &w_in, &w_out, 2, 3.0).0
    });
    assert_fd("smooth L1", &idx, &grad, &num, 1e-7, 1e-4);
}

#[test]
fn smooth_l1_rejects_bad_inputs() {
    let mut g = Graph::new();
    let a = g.input("m1_bbox_pred", &[1, 8, 5, 5]).unwrap();
    let b = g.input("m1_bbox_targets", &[1, 8, 5, 4]).unwrap();
    let e = smooth_l1(&mut g, "m1_bbox_loss", [a, b, a, a], 3.0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m1_bbox_loss") && e.contains("m1_bbox_targets") && e.contains("[1, 8, 5, 5]"),
        "{e}"
    );
    let e = smooth_l1(&mut g, "m1_bbox_loss", [a, a, a, a], 0.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sigma"), "{e}");
}
