//! upsample_bilinear_grad.wgsl vs its reference (the shader gathers with the closed-form weights, the
//! reference scatters along Caffe's 4×4 kernel, so sums may round differently: tolerance 1e-5), and the
//! reference vs finite differences of reference::upsample_bilinear and the adjoint identity
//! <up(x), d> = <x, up_grad(d)>.

use super::finite_diff::{assert_fd, central, dot, grid_vec, probe};
use crate::common::*;
use sshface::gpu::{DType, Graph};
use sshface::ops::upsample_bilinear_grad::upsample_bilinear_grad;
use sshface::reference::upsample_bilinear::upsample_bilinear as up_ref;
use sshface::reference::upsample_bilinear_grad::upsample_bilinear_grad as up_grad_ref;
use sshface::reference::CpuTensor;

/// (name, x shape [N, C, H, W], crop (Ho, Wo)).
#[rustfmt::skip]
fn cases() -> Vec<(&'static str, [usize; 4], [usize; 2])> {
    vec![
        ("5x7 to 9x13: drops the last row and column", [2, 3, 5, 7], [9, 13]),
        ("5x7 to 10x14: no crop", [2, 3, 5, 7], [10, 14]),
        ("5x7 to 9x14: drops the last row only", [1, 4, 5, 7], [9, 14]),
        ("5x7 to 10x13: drops the last column only", [2, 2, 5, 7], [10, 13]),
        ("1x1 to 2x2", [2, 3, 1, 1], [2, 2]),
        ("1x1 to 1x1", [1, 2, 1, 1], [1, 1]),
        ("3x1 to 6x2", [2, 3, 3, 1], [6, 2]),
        ("3x1 to 5x1", [1, 2, 3, 1], [5, 1]),
        ("6x4 to 3x5: deep crop", [2, 2, 6, 4], [3, 5]),
        ("17x34 to 33x67: many workgroups", [1, 16, 17, 34], [33, 67]),
    ]
}

fn dy_shape(x: [usize; 4], crop: [usize; 2]) -> [usize; 4] {
    [x[0], x[1], crop[0], crop[1]]
}

#[test]
fn upsample_bilinear_grad_matches_reference() {
    let Some(ctx) = gpu() else { return };
    for (i, (name, shape, crop)) in cases().into_iter().enumerate() {
        let ds = dy_shape(shape, crop);
        let dy = rand_vec(500 + i as u64, ds.iter().product(), -1.0, 1.0);
        let want = up_grad_ref(&CpuTensor::new(&ds, dy.clone()), shape);
        let mut g = Graph::new();
        let dyt = g.input("dy", &ds).unwrap();
        let dx = upsample_bilinear_grad(&mut g, "up_grad", dyt, shape).unwrap();
        assert_eq!(g.shape(dx), shape, "{name}: dx shape");
        g.mark_output(dx);
        let got = run_graph(ctx, g, &[(dyt, &dy)], &[dx]).remove(0);
        assert_close(name, &got, &want.data, 1e-5, 0.0);
    }
}

/// The per-axis rule by hand on one column (W = 1, Wo = 2: both kept columns see x with weight 0.75):
/// dx[j] = 0.75·(d[2j] + d[2j+1]) + 0.25·(d[2j−1] + d[2j+2]), d outside [0, Ho) = 0; Ho = 5 drops d[5].
#[test]
fn upsample_bilinear_grad_by_hand() {
    let rows = [1.0f32, 2.0, 4.0, 8.0, 16.0];
    let dy: Vec<f32> = rows.iter().flat_map(|&v| [v, v]).collect();
    let col = |j: usize| {
        let d = |o: isize| rows.get(o as usize).copied().unwrap_or(0.0);
        let o = 2 * j as isize;
        0.75 * (d(o) + d(o + 1)) + 0.25 * (d(o - 1) + d(o + 2))
    };
    // 2 columns × 0.75: the column weights of a single input column cropped to two outputs.
    let want: Vec<f32> = (0..3).map(|j| 1.5 * col(j)).collect();
    assert_eq!(want, [1.5 * 3.25, 1.5 * 13.5, 1.5 * 14.0]);
    let got = up_grad_ref(&CpuTensor::new(&[1, 1, 5, 2], dy.clone()), [1, 1, 3, 1]);
    assert_eq!(got.data, want, "reference");
    if let Some(ctx) = gpu() {
        let mut g = Graph::new();
        let dyt = g.input("dy", &[1, 1, 5, 2]).unwrap();
        let dx = upsample_bilinear_grad(&mut g, "up_grad", dyt, [1, 1, 3, 1]).unwrap();
        g.mark_output(dx);
        let got = run_graph(ctx, g, &[(dyt, &dy)], &[dx]).remove(0);
        assert_eq!(got, want, "shader");
    }
}

#[test]
fn upsample_bilinear_grad_reference_matches_finite_differences() {
    for (i, (name, shape, crop)) in cases().into_iter().enumerate() {
        let n: usize = shape.iter().product();
        // Multiples of 2^-6 times the kernel's multiples of 2^-4, summed 16 at most: the forward is exact in
        // f32, and so is the quotient of the linear loss.
        let mut x = grid_vec(600 + i as u64, n, -1.0, 1.0, 6);
        let ds = dy_shape(shape, crop);
        let r = grid_vec(700 + i as u64, ds.iter().product(), -1.0, 1.0, 6);
        let analytic = up_grad_ref(&CpuTensor::new(&ds, r.clone()), shape);
        let idx = probe(i as u64, n, 300);
        let num = central(&mut x, &idx, 1.0 / 512.0, |v| {
            dot(&r, &up_ref(&CpuTensor::new(&shape, v.to_vec()), crop).data)
        });
        assert_fd(name, &idx, &analytic.data, &num, 1e-9, 1e-9);
    }
}

#[test]
fn upsample_bilinear_grad_reference_is_the_adjoint() {
    for (i, (name, shape, crop)) in cases().into_iter().enumerate() {
        let ds = dy_shape(shape, crop);
        let x = rand_vec(800 + i as u64, shape.iter().product(), -1.0, 1.0);
        let d = rand_vec(900 + i as u64, ds.iter().product(), -1.0, 1.0);
        let lhs = dot(&d, &up_ref(&CpuTensor::new(&shape, x.clone()), crop).data);
        let rhs = dot(&x, &up_grad_ref(&CpuTensor::new(&ds, d), shape).data);
        assert!(
            (lhs - rhs).abs() <= 1e-5 * (1.0 + lhs.abs()),
            "{name}: <up(x), d> = {lhs} vs <x, up_grad(d)> = {rhs}"
        );
    }
}

#[test]
fn upsample_bilinear_grad_rejects_bad_shapes() {
    let mut g = Graph::new();
    let x_shape = [1, 4, 5, 7];
    for (dy_name, shape) in [
        ("m1_up.grad too tall", vec![1, 4, 11, 14]),
        ("m1_up.grad too wide", vec![1, 4, 10, 15]),
        ("m1_up.grad channels", vec![1, 3, 10, 14]),
        ("m1_up.grad batch", vec![2, 4, 10, 14]),
    ] {
        let dy = g.input(dy_name, &shape).unwrap();
        let e = upsample_bilinear_grad(&mut g, "m1_up", dy, x_shape)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m1_up")
                && e.contains(dy_name)
                && e.contains(&format!("{shape:?}"))
                && e.contains("Ho ≤ 10")
                && e.contains("Wo ≤ 14"),
            "{e}"
        );
    }
    let dy = g.input("m1_up.grad 3-D", &[4, 10, 14]).unwrap();
    let e = upsample_bilinear_grad(&mut g, "m1_up", dy, x_shape)
        .unwrap_err()
        .to_string();
    assert!(e.contains("m1_up") && e.contains("m1_up.grad 3-D"), "{e}");
    let dy = g
        .input_as("m1_up.grad f16", &[1, 4, 10, 14], DType::F16)
        .unwrap();
    let e = upsample_bilinear_grad(&mut g, "m1_up", dy, x_shape)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m1_up") && e.contains("m1_up.grad f16") && e.contains("F16"),
        "{e}"
    );
}
