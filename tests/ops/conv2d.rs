//! conv2d.wgsl (every entry point) vs reference::conv2d::conv2d on seeded data in [-1, 1).
//!
//! Tolerance: the GPU sums K = C_in/groups·KH·KW f32 products in another order than the f64
//! reference, so the error grows like sqrt(K)·eps·|terms|; each case uses atol = 1e-4·sqrt(K)
//! (about 100× the typical error, far below the O(0.1..1) change of any indexing mistake), rtol 0.

use crate::common::*;
use sshface::gpu::{Graph, TensorId};
use sshface::ops::conv2d::{conv2d, conv2d_with, Conv2d, ConvKernel};
use sshface::ops::Activation;
use sshface::reference::{conv2d::conv2d as conv_ref, CpuTensor};
use sshface::GpuContext;

#[derive(Clone, Copy)]
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) x: [usize; 4],
    pub(crate) c_out: usize,
    pub(crate) k: [usize; 2],
    pub(crate) stride: [usize; 2],
    pub(crate) pad: [usize; 4],
    pub(crate) dil: [usize; 2],
    pub(crate) groups: usize,
    pub(crate) act: Activation,
    pub(crate) bias: bool,
    pub(crate) res: bool,
}

pub(crate) const BASE: Case = Case {
    name: "",
    x: [1, 9, 17, 34],
    c_out: 13,
    k: [3, 3],
    stride: [1, 1],
    pad: [1, 1, 1, 1],
    dil: [1, 1],
    groups: 1,
    act: Activation::None,
    bias: true,
    res: false,
};

/// The case table. Every case runs on `Auto`, `Gemm`, `Gemm128`, `Naive`, and on `Pointwise` /
/// `Depthwise` / `Depthwise3x3` where the conv fits them; tolerance atol = 1e-4·sqrt(K) for all (see the module comment).
#[rustfmt::skip]
pub(crate) fn cases() -> Vec<Case> {
    let s2 = [2, 2];
    let tf = [0, 1, 0, 1];
    let p0 = [0; 4];
    vec![
        Case { name: "odd 17x34 C9->13 k3 p1", ..BASE },
        Case { name: "no bias", bias: false, ..BASE },
        Case { name: "s2 pad 0101 even 16x20", x: [1, 8, 16, 20], stride: s2, pad: tf, ..BASE },
        Case { name: "s2 pad 0101 odd 17x23", x: [1, 8, 17, 23], stride: s2, pad: tf, ..BASE },
        Case { name: "dw k3 s1 32ch", x: [1, 32, 15, 19], c_out: 32, groups: 32, ..BASE },
        Case { name: "dw k3 s2 0101 32ch", x: [1, 32, 16, 22], c_out: 32, groups: 32, stride: s2, pad: tf, ..BASE },
        Case { name: "dw k3 s1 96ch relu6", x: [1, 96, 11, 13], c_out: 96, groups: 96, act: Activation::Relu6, ..BASE },
        Case { name: "dw k3 s2 0101 96ch odd", x: [1, 96, 13, 17], c_out: 96, groups: 96, stride: s2, pad: tf, ..BASE },
        Case { name: "dw multiplier 2", x: [1, 6, 9, 10], c_out: 12, groups: 6, ..BASE },
        Case { name: "groups 3", x: [1, 9, 12, 11], c_out: 15, groups: 3, ..BASE },
        Case { name: "groups 2 wide (64-ch tiles)", x: [1, 12, 6, 7], c_out: 140, groups: 2, ..BASE },
        Case { name: "dilation 2", x: [1, 5, 14, 15], dil: [2, 2], pad: [2, 2, 2, 2], ..BASE },
        Case { name: "dilation (1,3) asym pad", x: [1, 4, 10, 17], dil: [1, 3], pad: [0, 2, 3, 1], ..BASE },
        Case { name: "1x1", x: [1, 24, 9, 13], c_out: 40, k: [1, 1], pad: p0, ..BASE },
        Case { name: "1x1 groups 2", x: [1, 8, 5, 7], c_out: 6, k: [1, 1], pad: p0, groups: 2, ..BASE },
        Case { name: "1x1 stride 2", x: [1, 16, 11, 14], c_out: 20, k: [1, 1], pad: p0, stride: s2, ..BASE },
        Case { name: "5x5 p2", x: [1, 7, 13, 12], c_out: 11, k: [5, 5], pad: [2, 2, 2, 2], ..BASE },
        Case { name: "3x5 no pad", x: [1, 3, 8, 9], c_out: 5, k: [3, 5], pad: p0, ..BASE },
        Case { name: "batch 2", x: [2, 9, 17, 34], ..BASE },
        Case { name: "batch 2 1x1 (tile spans images)", x: [2, 33, 5, 9], c_out: 36, k: [1, 1], pad: p0, ..BASE },
        Case { name: "batch 2 dw", x: [2, 16, 9, 11], c_out: 16, groups: 16, ..BASE },
        // Rows of several 8-output strips: interior strips take the unchecked row-segment path.
        Case { name: "batch 2 dw s2 0101 wide 41", x: [2, 5, 9, 41], c_out: 5, groups: 5, stride: s2, pad: tf, ..BASE },
        Case { name: "dw s1 wide 37 relu6", x: [1, 3, 6, 37], c_out: 3, groups: 3, act: Activation::Relu6, ..BASE },
        Case { name: "dw multiplier 3 s2", x: [1, 4, 11, 26], c_out: 12, groups: 4, stride: s2, pad: tf, ..BASE },
        Case { name: "dw s2 pad 1111", x: [1, 6, 10, 30], c_out: 6, groups: 6, stride: s2, ..BASE },
        Case { name: "dw k3 stride (1,2): generic entry", x: [1, 6, 10, 30], c_out: 6, groups: 6, stride: [1, 2], ..BASE },
        Case { name: "dw k5", x: [1, 6, 10, 30], c_out: 6, groups: 6, k: [5, 5], pad: [2, 2, 2, 2], ..BASE },
        Case { name: "dw width 1", x: [1, 4, 7, 1], c_out: 4, groups: 4, ..BASE },
        Case { name: "relu", act: Activation::Relu, ..BASE },
        Case { name: "relu6", act: Activation::Relu6, ..BASE },
        Case { name: "leaky 0.1", act: Activation::Leaky(0.1), ..BASE },
        Case { name: "residual + relu", res: true, act: Activation::Relu, ..BASE },
        Case { name: "residual 1x1", res: true, x: [1, 16, 7, 9], c_out: 8, k: [1, 1], pad: p0, ..BASE },
        Case { name: "residual dw", res: true, x: [1, 8, 7, 9], c_out: 8, groups: 8, ..BASE },
        Case { name: "C_out 29: 32-ch tile, partial", x: [1, 10, 9, 15], c_out: 29, ..BASE },
        Case { name: "C_out 70: one full + one partial 64-ch tile", x: [1, 5, 9, 10], c_out: 70, ..BASE },
        Case { name: "C_out 1, 1x1 input", x: [1, 3, 1, 1], c_out: 1, ..BASE },
        Case { name: "batch 2 1x1 C16->35, 13x11 (quads span images)", x: [2, 16, 13, 11], c_out: 35, k: [1, 1], pad: p0, ..BASE },
        Case { name: "1x1 C_out 16 exactly one channel block", x: [1, 32, 7, 9], c_out: 16, k: [1, 1], pad: p0, act: Activation::Relu6, ..BASE },
        Case { name: "1x1 groups 4, 3 pixels", x: [1, 8, 1, 3], c_out: 36, k: [1, 1], pad: p0, groups: 4, ..BASE },
        Case { name: "K 17 not a multiple of TK", x: [1, 17, 6, 5], c_out: 18, k: [1, 1], pad: p0, ..BASE },
        Case { name: "full tiles 64x40x40 -> 64 k3", x: [1, 64, 40, 40], c_out: 64, ..BASE },
    ]
}

pub(crate) fn k_of(c: &Case) -> usize {
    c.x[1] / c.groups * c.k[0] * c.k[1]
}

fn atol(c: &Case) -> f32 {
    1e-4 * (k_of(c) as f32).sqrt()
}

pub(crate) struct Data {
    pub(crate) x: Vec<f32>,
    pub(crate) w: Vec<f32>,
    pub(crate) b: Vec<f32>,
    pub(crate) r: Vec<f32>,
    pub(crate) wshape: [usize; 4],
    pub(crate) oshape: [usize; 4],
}

pub(crate) fn data(c: &Case, seed: u64) -> Data {
    let wshape = [c.c_out, c.x[1] / c.groups, c.k[0], c.k[1]];
    let want_shape = |x: &CpuTensor| x.nchw();
    let x = rand_vec(seed, c.x.iter().product(), -1.0, 1.0);
    let w = rand_vec(seed + 1, wshape.iter().product(), -1.0, 1.0);
    let b = rand_vec(seed + 2, c.c_out, -1.0, 1.0);
    let probe = reference(c, &x, &w, None, None, c.pad);
    let oshape = want_shape(&probe);
    let r = rand_vec(seed + 3, oshape.iter().product(), -1.0, 1.0);
    Data {
        x,
        w,
        b,
        r,
        wshape,
        oshape,
    }
}

pub(crate) fn reference(
    c: &Case,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    r: Option<&CpuTensor>,
    pad: [usize; 4],
) -> CpuTensor {
    let wshape = [c.c_out, c.x[1] / c.groups, c.k[0], c.k[1]];
    conv_ref(
        &CpuTensor::new(&c.x, x.to_vec()),
        &CpuTensor::new(&wshape, w.to_vec()),
        b,
        c.stride,
        pad,
        c.dil,
        c.groups,
        c.act,
        r,
    )
}

pub(crate) fn layer(ctx: &GpuContext, c: &Case, d: &Data) -> Conv2d {
    let w = ctx.weight("w", &d.w, &d.wshape).unwrap();
    let b = c.bias.then(|| ctx.weight("b", &d.b, &[c.c_out]).unwrap());
    Conv2d {
        weight: w,
        bias: b,
        stride: c.stride,
        pad: c.pad,
        dilation: c.dil,
        groups: c.groups,
        act: c.act,
    }
}

fn kernels(c: &Case) -> Vec<ConvKernel> {
    let mut ks = vec![
        ConvKernel::Auto,
        ConvKernel::Gemm,
        ConvKernel::Gemm128,
        ConvKernel::Naive,
    ];
    if c.k == [1, 1] && c.stride == [1, 1] && c.pad == [0; 4] {
        ks.push(ConvKernel::Pointwise);
        ks.push(ConvKernel::PointwiseDirect);
    }
    if c.x[1] == c.groups {
        ks.push(ConvKernel::Depthwise);
        if c.k == [3, 3] && c.dil == [1, 1] && c.stride[0] == c.stride[1] && c.stride[0] <= 2 {
            ks.push(ConvKernel::Depthwise3x3);
        }
    }
    ks
}

/// Runs `c` on each kernel in one graph; returns (kernel, output) pairs.
pub(crate) fn run_case(ctx: &GpuContext, c: &Case, d: &Data) -> Vec<(ConvKernel, Vec<f32>)> {
    let conv = layer(ctx, c, d);
    let mut g = Graph::new();
    let tx = g.input("x", &c.x).unwrap();
    let tr = g.input("res", &d.oshape).unwrap();
    let ks = kernels(c);
    let outs: Vec<TensorId> = ks
        .iter()
        .map(|&k| {
            let o = conv2d_with(
                &mut g,
                &format!("{} {k:?}", c.name),
                tx,
                &conv,
                c.res.then_some(tr),
                None,
                k,
            )
            .unwrap();
            g.mark_output(o);
            o
        })
        .collect();
    let got = run_graph(ctx, g, &[(tx, &d.x), (tr, &d.r)], &outs);
    ks.into_iter().zip(got).collect()
}

#[test]
fn conv2d_cases() {
    let Some(ctx) = gpu() else { return };
    for (i, c) in cases().iter().enumerate() {
        let d = data(c, 1000 * i as u64);
        let res = CpuTensor::new(&d.oshape, d.r.clone());
        let want = reference(
            c,
            &d.x,
            &d.w,
            c.bias.then_some(&d.b[..]),
            c.res.then_some(&res),
            c.pad,
        );
        assert_eq!(want.nchw(), d.oshape);
        for (k, got) in run_case(ctx, c, &d) {
            assert_close(
                &format!("{} [{k:?}] K={}", c.name, k_of(c)),
                &got,
                &want.data,
                atol(c),
                0.0,
            );
        }
    }
}

/// The tolerance is tight enough to catch a one-pixel padding mistake and a dropped bias.
#[test]
fn conv2d_tolerance_catches_wrong_reference() {
    let Some(ctx) = gpu() else { return };
    let c = Case {
        name: "s2 0101",
        x: [1, 8, 16, 20],
        stride: [2, 2],
        pad: [0, 1, 0, 1],
        ..BASE
    };
    let d = data(&c, 77);
    let got = &run_case(ctx, &c, &d)[0].1;
    let max_diff = |want: &CpuTensor| {
        got.iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
    };
    let right = reference(&c, &d.x, &d.w, Some(&d.b), None, c.pad);
    let shifted = reference(&c, &d.x, &d.w, Some(&d.b), None, [1, 0, 1, 0]);
    let no_bias = reference(&c, &d.x, &d.w, None, None, c.pad);
    assert!(
        max_diff(&right) <= atol(&c),
        "right reference off by {}",
        max_diff(&right)
    );
    assert!(
        max_diff(&shifted) > 100.0 * atol(&c),
        "padding shift not detected: {}",
        max_diff(&shifted)
    );
    assert!(
        max_diff(&no_bias) > 100.0 * atol(&c),
        "missing bias not detected: {}",
        max_diff(&no_bias)
    );
}

/// Two convs fill the halves of one 64-channel tensor (the SSH concat); both halves are checked.
#[test]
fn conv2d_into_channel_offset() {
    let Some(ctx) = gpu() else { return };
    let a = Case {
        name: "into hi",
        x: [2, 6, 9, 11],
        c_out: 32,
        act: Activation::Relu,
        ..BASE
    };
    let b = Case {
        name: "into lo",
        k: [1, 1],
        pad: [0; 4],
        ..a
    };
    let (da, db) = (data(&a, 5), data(&b, 6));
    let (ca, cb) = (layer(ctx, &a, &da), layer(ctx, &b, &db));
    let mut g = Graph::new();
    let tx = g.input("x", &a.x).unwrap();
    let cat = g.tensor("cat", &[2, 64, 9, 11]).unwrap();
    let r1 = conv2d(&mut g, "hi", tx, &ca, None, Some((cat, 32))).unwrap();
    let r2 = conv2d(&mut g, "lo", tx, &cb, None, Some((cat, 0))).unwrap();
    assert_eq!((r1, r2), (cat, cat));
    g.mark_output(cat);
    let got = &run_graph(ctx, g, &[(tx, &da.x)], &[cat])[0];
    let wa = reference(&a, &da.x, &da.w, Some(&da.b), None, a.pad);
    let wb = reference(&b, &da.x, &db.w, Some(&db.b), None, b.pad);
    let hw = 9 * 11;
    for n in 0..2 {
        let half = |c0: usize| &got[(n * 64 + c0) * hw..(n * 64 + c0 + 32) * hw];
        let img = |t: &CpuTensor| t.data[n * 32 * hw..(n + 1) * 32 * hw].to_vec();
        assert_close(&format!("into lo n{n}"), half(0), &img(&wb), atol(&b), 0.0);
        assert_close(&format!("into hi n{n}"), half(32), &img(&wa), atol(&a), 0.0);
    }
}

/// More than 4,096 pixel tiles (64 pixels each at C_out > 32, 256 for the direct 1x1): the dispatch wraps them over x and z.
#[test]
fn conv2d_many_tiles() {
    let Some(ctx) = gpu() else { return };
    let one = Case {
        name: "x/z wrap 1x1 pointwise",
        x: [1, 1, 520, 530],
        c_out: 33,
        ..BASE
    };
    let one = Case {
        k: [1, 1],
        pad: [0; 4],
        ..one
    };
    let three = Case {
        name: "x/z wrap k3 gemm",
        x: [1, 2, 520, 530],
        c_out: 33,
        ..BASE
    };
    // conv2d_1x1_direct has 256 pixels per workgroup: it needs 4 times the pixels to wrap.
    let direct = Case {
        name: "x/z wrap 1x1 direct",
        x: [1, 1, 1030, 1030],
        c_out: 3,
        ..one
    };
    for (c, kernel) in [
        (one, ConvKernel::Pointwise),
        (three, ConvKernel::Gemm),
        (direct, ConvKernel::PointwiseDirect),
    ] {
        let d = data(&c, 9);
        let conv = layer(ctx, &c, &d);
        let mut g = Graph::new();
        let tx = g.input("x", &c.x).unwrap();
        let o = conv2d_with(&mut g, c.name, tx, &conv, None, None, kernel).unwrap();
        assert!(
            g.steps()[0].workgroups[2] > 1,
            "{}: {:?}",
            c.name,
            g.steps()[0].workgroups
        );
        g.mark_output(o);
        let got = &run_graph(ctx, g, &[(tx, &d.x)], &[o])[0];
        let want = reference(&c, &d.x, &d.w, Some(&d.b), None, c.pad);
        assert_close(c.name, got, &want.data, atol(&c), 0.0);
    }
}
