//! conv2d_grad.wgsl (input, weight and bias gradients) vs reference::conv2d_grad, and that reference vs
//! finite differences of reference::conv2d.
//!
//! Tolerance GPU vs reference: f32 sums of K terms (input gradient: C_out/groups·KH·KW; weight gradient:
//! N·Ho·Wo) of values in [−1, 1) against f64 sums: atol 1e-4·sqrt(K), about 100× the typical error and far
//! below the O(0.1..1) change any indexing mistake makes. Finite differences: the conv is linear, so a step
//! of 1/4 on data on a 2^-8 grid is exact but for the f32 rounding of the forward outputs: atol 1e-4.

use super::finite_diff::{assert_fd, central, dot, grid_vec, probe};
use crate::common::*;
use sshface::gpu::{DType, Graph};
use sshface::ops::conv2d::Conv2d;
use sshface::ops::conv2d_grad::{
    conv2d_grad_input, conv2d_grad_params, weight_grad_splits, OutGrad, ParamGrads,
};
use sshface::ops::Activation;
use sshface::reference::conv2d::conv2d as conv_ref;
use sshface::reference::conv2d_grad::{self as grad_ref, Geometry};
use sshface::reference::CpuTensor;
use sshface::GpuContext;

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    x: [usize; 4],
    c_out: usize,
    k: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 4],
    dil: [usize; 2],
    groups: usize,
}

const BASE: Case = Case {
    name: "",
    x: [1, 5, 7, 9],
    c_out: 6,
    k: [3, 3],
    stride: [1, 1],
    pad: [1, 1, 1, 1],
    dil: [1, 1],
    groups: 1,
};

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let s2 = [2, 2];
    let p0 = [0; 4];
    vec![
        Case { name: "odd 7x9 C5->6 k3 p1", ..BASE },
        Case { name: "s2 pad 0101 odd 9x11 batch 2", x: [2, 4, 9, 11], c_out: 5, stride: s2, pad: [0, 1, 0, 1], ..BASE },
        Case { name: "s2 pad (1,2,0,1) 8x7", x: [1, 3, 8, 7], stride: s2, pad: [1, 2, 0, 1], ..BASE },
        Case { name: "k2 s3: pixels no window reaches", x: [1, 3, 10, 11], c_out: 4, k: [2, 2], stride: [3, 3], pad: p0, ..BASE },
        Case { name: "stride (1,2) k3x5 pad (2,0,1,3)", x: [1, 3, 6, 13], k: [3, 5], stride: [1, 2], pad: [2, 0, 1, 3], ..BASE },
        Case { name: "dilation 2", x: [1, 3, 9, 10], dil: [2, 2], pad: [2, 2, 2, 2], ..BASE },
        Case { name: "dilation (1,3) asym pad", x: [1, 4, 8, 13], dil: [1, 3], pad: [0, 2, 3, 1], ..BASE },
        Case { name: "groups 3 batch 2", x: [2, 6, 7, 8], c_out: 9, groups: 3, ..BASE },
        Case { name: "depthwise batch 2", x: [2, 8, 9, 7], c_out: 8, groups: 8, ..BASE },
        Case { name: "depthwise multiplier 2 s2", x: [1, 4, 9, 10], c_out: 8, groups: 4, stride: s2, ..BASE },
        Case { name: "1x1 stride 2", x: [1, 6, 7, 9], c_out: 5, k: [1, 1], stride: s2, pad: p0, ..BASE },
        Case { name: "5x3 kernel batch 3", x: [3, 2, 6, 8], c_out: 3, k: [5, 3], pad: [2, 2, 1, 1], ..BASE },
        Case { name: "70 -> 66 channels: two 64-channel tiles", x: [1, 70, 5, 6], c_out: 66, ..BASE },
        Case { name: "split reduction: batch 2 40x45", x: [2, 3, 40, 45], c_out: 4, ..BASE },
    ]
}

fn geometry(c: &Case) -> Geometry {
    Geometry {
        stride: c.stride,
        pad: c.pad,
        dilation: c.dil,
        groups: c.groups,
    }
}

fn wshape(c: &Case) -> [usize; 4] {
    [c.c_out, c.x[1] / c.groups, c.k[0], c.k[1]]
}

fn conv(ctx: &GpuContext, c: &Case, w: &[f32], bias: Option<&[f32]>) -> Conv2d {
    Conv2d {
        weight: ctx.weight("w", w, &wshape(c)).unwrap(),
        bias: bias.map(|b| ctx.weight("b", b, &[c.c_out]).unwrap()),
        stride: c.stride,
        pad: c.pad,
        dilation: c.dil,
        groups: c.groups,
        act: Activation::None,
    }
}

/// The forward output shape of the case.
fn out_shape(c: &Case) -> [usize; 4] {
    let x = CpuTensor::zeros(&c.x);
    let w = CpuTensor::zeros(&wshape(c));
    let y = conv_ref(
        &x,
        &w,
        None,
        c.stride,
        c.pad,
        c.dil,
        c.groups,
        Activation::None,
        None,
    );
    y.nchw()
}

#[test]
fn conv2d_grad_cases() {
    let Some(ctx) = gpu() else { return };
    let mut split_cases = 0;
    for (i, c) in cases().iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let ws = wshape(c);
        let ys = out_shape(c);
        let xd = rand_vec(seed, c.x.iter().product(), -1.0, 1.0);
        let wd = rand_vec(seed + 1, ws.iter().product(), -1.0, 1.0);
        let dyd = rand_vec(seed + 2, ys.iter().product(), -1.0, 1.0);
        let pixels = ys[0] * ys[2] * ys[3];
        if weight_grad_splits(pixels, c.c_out, ws[1] * ws[2] * ws[3]) > 1 {
            split_cases += 1;
        }

        let mut g = Graph::new();
        let x = g.input("x", &c.x).unwrap();
        let dy = g.input("dy", &ys).unwrap();
        let cv = conv(ctx, c, &wd, None);
        let dx = conv2d_grad_input(&mut g, "dx", dy, &cv, c.x).unwrap();
        let grads = conv2d_grad_params(&mut g, "conv", x, dy, &cv, None).unwrap();
        for t in [dx, grads.weight, grads.bias] {
            g.mark_output(t);
        }
        let got = run_graph(
            ctx,
            g,
            &[(x, &xd), (dy, &dyd)],
            &[dx, grads.weight, grads.bias],
        );

        let geo = geometry(c);
        let dy_t = CpuTensor::new(&ys, dyd);
        let want_dx = grad_ref::conv2d_grad_input(&dy_t, &CpuTensor::new(&ws, wd), c.x, &geo);
        let (want_dw, want_db) =
            grad_ref::conv2d_grad_params(&CpuTensor::new(&c.x, xd), &dy_t, ws, &geo);
        let k_in = (c.c_out / c.groups * c.k[0] * c.k[1]) as f32;
        assert_close(
            &format!("{} dx", c.name),
            &got[0],
            &want_dx.data,
            1e-4 * k_in.sqrt(),
            0.0,
        );
        let atol = 1e-4 * (pixels as f32).sqrt();
        assert_close(&format!("{} dw", c.name), &got[1], &want_dw.data, atol, 0.0);
        assert_close(&format!("{} db", c.name), &got[2], &want_db, atol, 0.0);
    }
    assert!(
        split_cases > 0,
        "no case splits the weight gradient's reduction"
    );
}

/// With `accumulate`, the gradients are added to what the tensors hold (iter_size accumulation).
#[test]
fn conv2d_grad_accumulates() {
    let Some(ctx) = gpu() else { return };
    let c = Case {
        name: "accumulate",
        x: [2, 4, 9, 11],
        c_out: 5,
        stride: [2, 2],
        pad: [0, 1, 0, 1],
        ..BASE
    };
    let (ws, ys) = (wshape(&c), out_shape(&c));
    let xd = rand_vec(1, c.x.iter().product(), -1.0, 1.0);
    let wd = rand_vec(2, ws.iter().product(), -1.0, 1.0);
    let dyd = rand_vec(3, ys.iter().product(), -1.0, 1.0);
    let w0 = rand_vec(4, ws.iter().product(), -1.0, 1.0);
    let b0 = rand_vec(5, c.c_out, -1.0, 1.0);
    let mut g = Graph::new();
    let x = g.input("x", &c.x).unwrap();
    let dy = g.input("dy", &ys).unwrap();
    let acc = ParamGrads {
        weight: g.input("w.grad", &ws).unwrap(),
        bias: g.input("b.grad", &[c.c_out]).unwrap(),
    };
    let cv = conv(ctx, &c, &wd, Some(&b0));
    let out = conv2d_grad_params(&mut g, "conv", x, dy, &cv, Some(acc)).unwrap();
    assert_eq!(out, acc, "accumulating returns the accumulators");
    let got = run_graph(
        ctx,
        g,
        &[(x, &xd), (dy, &dyd), (acc.weight, &w0), (acc.bias, &b0)],
        &[acc.weight, acc.bias],
    );
    let (dw, db) = grad_ref::conv2d_grad_params(
        &CpuTensor::new(&c.x, xd),
        &CpuTensor::new(&ys, dyd),
        ws,
        &geometry(&c),
    );
    let want_w: Vec<f32> = w0.iter().zip(&dw.data).map(|(a, b)| a + b).collect();
    let want_b: Vec<f32> = b0.iter().zip(&db).map(|(a, b)| a + b).collect();
    assert_close("accumulated dw", &got[0], &want_w, 1e-3, 0.0);
    assert_close("accumulated db", &got[1], &want_b, 1e-3, 0.0);
}

/// The output gradient as a channel slice of a concatenation's gradient (the forward wrote `into` it).
#[test]
fn conv2d_grad_reads_a_channel_slice() {
    let Some(ctx) = gpu() else { return };
    let c = Case {
        name: "slice",
        x: [2, 4, 9, 11],
        c_out: 5,
        stride: [2, 2],
        pad: [0, 1, 0, 1],
        groups: 1,
        ..BASE
    };
    let (ws, ys) = (wshape(&c), out_shape(&c));
    let (total, off) = (11, 3);
    let big_shape = [ys[0], total, ys[2], ys[3]];
    let xd = rand_vec(1, c.x.iter().product(), -1.0, 1.0);
    let wd = rand_vec(2, ws.iter().product(), -1.0, 1.0);
    let big = rand_vec(3, big_shape.iter().product(), -1.0, 1.0);
    let hw = ys[2] * ys[3];
    let slice: Vec<f32> = (0..ys[0])
        .flat_map(|b| {
            big[(b * total + off) * hw..][..c.c_out * hw]
                .iter()
                .copied()
        })
        .collect();
    let mut g = Graph::new();
    let x = g.input("x", &c.x).unwrap();
    let dy = g.input("concat.grad", &big_shape).unwrap();
    let cv = conv(ctx, &c, &wd, None);
    let part = OutGrad {
        tensor: dy,
        channel_offset: Some(off),
    };
    let dx = conv2d_grad_input(&mut g, "dx", part, &cv, c.x).unwrap();
    let grads = conv2d_grad_params(&mut g, "conv", x, part, &cv, None).unwrap();
    for t in [dx, grads.weight, grads.bias] {
        g.mark_output(t);
    }
    // A whole tensor must be exactly the conv's output; a slice must fit inside.
    let e = conv2d_grad_input(&mut g, "dx", dy, &cv, c.x)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("concat.grad") && e.contains("[2, 11, 4, 5]") && e.contains("[2, 5, 4, 5]"),
        "{e}"
    );
    let e = conv2d_grad_input(
        &mut g,
        "dx",
        OutGrad {
            tensor: dy,
            channel_offset: Some(7),
        },
        &cv,
        c.x,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("channels 7..12"), "{e}");
    let got = run_graph(
        ctx,
        g,
        &[(x, &xd), (dy, &big)],
        &[dx, grads.weight, grads.bias],
    );
    let geo = geometry(&c);
    let dy_t = CpuTensor::new(&ys, slice);
    let want_dx = grad_ref::conv2d_grad_input(&dy_t, &CpuTensor::new(&ws, wd), c.x, &geo);
    let (want_dw, want_db) =
        grad_ref::conv2d_grad_params(&CpuTensor::new(&c.x, xd), &dy_t, ws, &geo);
    assert_close("slice dx", &got[0], &want_dx.data, 1e-3, 0.0);
    assert_close("slice dw", &got[1], &want_dw.data, 1e-3, 0.0);
    assert_close("slice db", &got[2], &want_db, 1e-3, 0.0);
}

#[test]
fn conv2d_grad_reference_matches_finite_differences() {
    for (i, c) in cases().iter().enumerate() {
        let seed = 500 + 10 * i as u64;
        let (ws, ys) = (wshape(c), out_shape(c));
        let mut xd = grid_vec(seed, c.x.iter().product(), -1.0, 1.0, 8);
        let mut wd = grid_vec(seed + 1, ws.iter().product(), -1.0, 1.0, 8);
        let mut bd = grid_vec(seed + 2, c.c_out, -1.0, 1.0, 8);
        let r = rand_vec(seed + 3, ys.iter().product(), -1.0, 1.0);
        let fwd = |x: &[f32], w: &[f32], b: &[f32]| {
            let y = conv_ref(
                &CpuTensor::new(&c.x, x.to_vec()),
                &CpuTensor::new(&ws, w.to_vec()),
                Some(b),
                c.stride,
                c.pad,
                c.dil,
                c.groups,
                Activation::None,
                None,
            );
            dot(&r, &y.data)
        };
        let geo = geometry(c);
        let dy = CpuTensor::new(&ys, r.clone());
        let dx = grad_ref::conv2d_grad_input(&dy, &CpuTensor::new(&ws, wd.clone()), c.x, &geo);
        let (dw, db) =
            grad_ref::conv2d_grad_params(&CpuTensor::new(&c.x, xd.clone()), &dy, ws, &geo);
        let h = 0.25;
        let idx = probe(seed, xd.len(), 24);
        let (wc, bc) = (wd.clone(), bd.clone());
        let num = central(&mut xd, &idx, h, |x| fwd(x, &wc, &bc));
        assert_fd(&format!("{} dx", c.name), &idx, &dx.data, &num, 1e-4, 1e-5);
        let idx = probe(seed + 1, wd.len(), 24);
        let num = central(&mut wd, &idx, h, |w| fwd(&xd, w, &bc));
        assert_fd(&format!("{} dw", c.name), &idx, &dw.data, &num, 1e-4, 1e-5);
        let idx = probe(seed + 2, bd.len(), 24);
        let num = central(&mut bd, &idx, h, |b| fwd(&xd, &wd, b));
        assert_fd(&format!("{} db", c.name), &idx, &db, &num, 1e-4, 1e-5);
    }
}

#[test]
fn conv2d_grad_rejects_bad_inputs() {
    let Some(ctx) = gpu() else { return };
    let c = BASE;
    let cv = conv(ctx, &c, &vec![0.0; wshape(&c).iter().product()], None);
    let mut g = Graph::new();
    let x = g.input("conv3_1_in", &c.x).unwrap();
    let dy = g.input("conv3_1_dy", &[1, 6, 7, 8]).unwrap();
    let e = conv2d_grad_input(&mut g, "conv3_1", dy, &cv, c.x)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("conv3_1") && e.contains("conv3_1_dy") && e.contains("[1, 6, 7, 9]"),
        "{e}"
    );
    let e = conv2d_grad_params(&mut g, "conv3_1", x, dy, &cv, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("conv3_1_dy") && e.contains("[1, 6, 7, 8]"),
        "{e}"
    );
    let dy = g.input("dy_ok", &[1, 6, 7, 9]).unwrap();
    let acc = ParamGrads {
        weight: g.input("w.grad", &[6, 5, 3, 1]).unwrap(),
        bias: g.input("b.grad", &[6]).unwrap(),
    };
    let e = conv2d_grad_params(&mut g, "conv3_1", x, dy, &cv, Some(acc))
        .unwrap_err()
        .to_string();
    assert!(e.contains("w.grad") && e.contains("[6, 5, 3, 3]"), "{e}");
    let half = g.input_as("x16", &c.x, DType::F16).unwrap();
    let e = conv2d_grad_params(&mut g, "conv3_1", half, dy, &cv, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("x16") && e.contains("F16"), "{e}");
    // An input whose channels do not fit the weight.
    let e = conv2d_grad_input(&mut g, "conv3_1", dy, &cv, [1, 4, 7, 9])
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv3_1") && e.contains("C_in"), "{e}");
}
