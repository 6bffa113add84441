//! max_pool_grad.wgsl and relu_grad.wgsl vs their references (exact: the pool gradient adds the same dy
//! values in the same window order as Caffe's scatter, ReLU's copies or zeroes), and the references vs
//! finite differences of reference::max_pool and of max(x, 0) on data without ties or zeros.

use super::finite_diff::{assert_fd, central, distinct_vec, dot, probe};
use crate::common::*;
use rand::Rng;
use sshface::gpu::Graph;
use sshface::ops::max_pool::Pool;
use sshface::ops::max_pool_grad::max_pool_grad;
use sshface::ops::relu_grad::relu_grad;
use sshface::reference::max_pool::max_pool as pool_ref;
use sshface::reference::max_pool_grad::max_pool_grad as pool_grad_ref;
use sshface::reference::relu_grad::relu_grad as relu_grad_ref;
use sshface::reference::CpuTensor;

const fn pool(k: usize, s: usize, p: usize, ceil_mode: bool) -> Pool {
    Pool {
        kernel: [k, k],
        stride: [s, s],
        pad: [p, p],
        ceil_mode,
    }
}

#[rustfmt::skip]
fn cases() -> Vec<(&'static str, [usize; 4], Pool)> {
    vec![
        ("ssh k2s2 ceil odd 7x9: clipped edge windows", [2, 3, 7, 9], pool(2, 2, 0, true)),
        ("ssh k2s2 ceil 1x1: one overhanging window", [1, 2, 1, 1], pool(2, 2, 0, true)),
        ("k3s2p1 ceil 9x9: overlapping windows", [1, 3, 9, 9], pool(3, 2, 1, true)),
        ("k3s2p1 ceil 4x4: last window in the padding row", [2, 2, 4, 4], pool(3, 2, 1, true)),
        ("k2s2p1 ceil 3x3: caffe drops the last window", [1, 2, 3, 3], pool(2, 2, 1, true)),
        ("k3s1p1 floor 6x7: each pixel in up to 9 windows", [1, 2, 6, 7], pool(3, 1, 1, false)),
        ("asymmetric k3x2 s2x1 p1x0 ceil 10x7", [1, 3, 10, 7], Pool { kernel: [3, 2], stride: [2, 1], pad: [1, 0], ceil_mode: true }),
    ]
}

fn run_pool_grad(
    shape: [usize; 4],
    p: &Pool,
    x: &[f32],
    dy: &[f32],
    dy_shape: &[usize],
) -> Vec<f32> {
    let ctx = gpu().expect("checked by caller");
    let mut g = Graph::new();
    let xt = g.input("x", &shape).unwrap();
    let dyt = g.input("dy", dy_shape).unwrap();
    let dx = max_pool_grad(&mut g, "pool_grad", xt, dyt, p).unwrap();
    g.mark_output(dx);
    run_graph(ctx, g, &[(xt, x), (dyt, dy)], &[dx]).remove(0)
}

/// Values from {−2, −1, 0, 1, 2} (many ties in every window) or all −1 (every window a tie).
#[test]
fn max_pool_grad_cases_with_ties() {
    if gpu().is_none() {
        return;
    }
    for (i, (name, shape, p)) in cases().into_iter().enumerate() {
        let n: usize = shape.iter().product();
        let mut r = rng(40 + i as u64);
        for (kind, x) in [
            (
                "ties",
                (0..n)
                    .map(|_| r.random_range(-2..=2) as f32)
                    .collect::<Vec<_>>(),
            ),
            ("all equal", vec![-1.0; n]),
            ("distinct", distinct_vec(60 + i as u64, n)),
        ] {
            let xt = CpuTensor::new(&shape, x.clone());
            let ys = pool_ref(&xt, &p).shape;
            let dy = rand_vec(80 + i as u64, ys.iter().product(), -1.0, 1.0);
            let want = pool_grad_ref(&xt, &CpuTensor::new(&ys, dy.clone()), &p);
            let got = run_pool_grad(shape, &p, &x, &dy, &ys);
            assert_close(&format!("{name} [{kind}]"), &got, &want.data, 0.0, 0.0);
        }
    }
}

/// Caffe's rule by hand: a tie sends the gradient to the first maximum in row-major order.
#[test]
fn max_pool_grad_ties_go_to_the_first_maximum() {
    let p = pool(2, 2, 0, true);
    // 3x3 ceil: windows {0,1,3,4}, {2,5}, {6,7}, {8}; maxima tied at 5 in the first window (indices 1, 3, 4).
    let x = [0.0, 5.0, 1.0, 5.0, 5.0, 1.0, 2.0, 2.0, -7.0];
    let dy = [1.0, 2.0, 3.0, 4.0];
    let want = [0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 4.0];
    let xt = CpuTensor::new(&[1, 1, 3, 3], x.to_vec());
    let got_ref = pool_grad_ref(&xt, &CpuTensor::new(&[1, 1, 2, 2], dy.to_vec()), &p);
    assert_eq!(got_ref.data, want, "reference");
    if gpu().is_some() {
        let got = run_pool_grad([1, 1, 3, 3], &p, &x, &dy, &[1, 1, 2, 2]);
        assert_eq!(got, want, "shader");
    }
}

#[test]
fn max_pool_grad_reference_matches_finite_differences() {
    for (i, (name, shape, p)) in cases().into_iter().enumerate() {
        let n: usize = shape.iter().product();
        // Gaps of 1/64 between values and a step of 2^-9: no maximum changes place.
        let mut x = distinct_vec(200 + i as u64, n);
        let xt = CpuTensor::new(&shape, x.clone());
        let ys = pool_ref(&xt, &p).shape;
        let r = rand_vec(300 + i as u64, ys.iter().product(), -1.0, 1.0);
        let analytic = pool_grad_ref(&xt, &CpuTensor::new(&ys, r.clone()), &p);
        let idx = probe(i as u64, n, 400);
        let num = central(&mut x, &idx, 1.0 / 512.0, |v| {
            dot(&r, &pool_ref(&CpuTensor::new(&shape, v.to_vec()), &p).data)
        });
        assert_fd(name, &idx, &analytic.data, &num, 1e-6, 1e-6);
    }
}

#[test]
fn max_pool_grad_rejects_bad_shapes() {
    let mut g = Graph::new();
    let x = g.input("conv4_3", &[1, 4, 7, 9]).unwrap();
    let dy = g.input("pool4.grad", &[1, 4, 3, 4]).unwrap();
    let e = max_pool_grad(&mut g, "pool4", x, dy, &pool(2, 2, 0, true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pool4") && e.contains("pool4.grad") && e.contains("[1, 4, 4, 5]"),
        "{e}"
    );
    let e = max_pool_grad(&mut g, "pool4", x, dy, &pool(9, 2, 0, false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("pool4") && e.contains("kernel 9"), "{e}");
}

#[test]
fn relu_grad_matches_reference() {
    let Some(ctx) = gpu() else { return };
    for (name, shape) in [
        ("17x34 C3", vec![1, 3, 17, 34]),
        ("batch 2 odd", vec![2, 5, 3, 7]),
        ("flat 1", vec![1]),
    ] {
        let n: usize = shape.iter().product();
        // A third exact zeros: the forward output of every non-positive input.
        let y: Vec<f32> = rand_vec(7, n, -1.0, 2.0)
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        let dy = rand_vec(8, n, -1.0, 1.0);
        let mut g = Graph::new();
        let yt = g.input("y", &shape).unwrap();
        let dyt = g.input("dy", &shape).unwrap();
        let dx = relu_grad(&mut g, "relu_grad", yt, dyt).unwrap();
        g.mark_output(dx);
        let got = run_graph(ctx, g, &[(yt, &y), (dyt, &dy)], &[dx]).remove(0);
        let want = relu_grad_ref(&y, &dy);
        assert!(
            want.iter().filter(|&&v| v == 0.0).count() > n / 4,
            "{name}: zeros masked"
        );
        assert_close(name, &got, &want, 0.0, 0.0);
    }
}

#[test]
fn relu_grad_reference_matches_finite_differences() {
    // Inputs at least 1/64 from 0, step 2^-9: no input crosses the kink.
    let mut x: Vec<f32> = distinct_vec(9, 200)
        .into_iter()
        .map(|v| if v >= 0.0 { v + 1.0 / 64.0 } else { v })
        .collect();
    let r = rand_vec(10, x.len(), -1.0, 1.0);
    let relu = |v: &[f32]| v.iter().map(|&a| a.max(0.0)).collect::<Vec<f32>>();
    let analytic = relu_grad_ref(&relu(&x), &r);
    let idx = probe(0, x.len(), 200);
    let num = central(&mut x, &idx, 1.0 / 512.0, |v| dot(&r, &relu(v)));
    assert_fd("relu", &idx, &analytic, &num, 1e-9, 0.0);
}

#[test]
fn relu_grad_rejects_mismatched_shapes() {
    let mut g = Graph::new();
    let y = g.input("conv5_3", &[1, 4, 7, 9]).unwrap();
    let dy = g.input("conv5_3.grad", &[1, 4, 7, 8]).unwrap();
    let e = relu_grad(&mut g, "relu5_3", y, dy).unwrap_err().to_string();
    assert!(
        e.contains("relu5_3") && e.contains("conv5_3.grad") && e.contains("[1, 4, 7, 9]"),
        "{e}"
    );
}
