//! conv2d_coop{8,16}.wgsl (cooperative matrices, f16 operands, f32 accumulators) vs the f64 reference.
//!
//! The kernel rounds inputs and weights to f16 and then multiplies exactly (an f16 × f16 product fits
//! f32) and accumulates in f32. So the reference runs on the f16-rounded inputs and weights, and the
//! tolerance is the fp32 kernels' atol = 1e-4·sqrt(K): a rounding or indexing mistake is far above it.
//! Every case of the fp32 table runs, on each matrix size the adapter offers, with the kernel forced
//! (`ConvKernel::Coop`) and on `Auto` in a graph built for the cooperative path.

use super::conv2d::{cases, data, k_of, layer, reference, Case, Data, BASE};
use crate::common::*;
use sshface::gpu::{ConvPath, Graph, TensorId};
use sshface::ops::conv2d::{conv2d_with, ConvKernel};
use sshface::ops::conv2d_coop::pays;
use sshface::ops::Activation;
use sshface::reference::CpuTensor;
use sshface::GpuContext;

fn atol(c: &Case) -> f32 {
    1e-4 * (k_of(c) as f32).sqrt()
}

fn path(ctx: &GpuContext, size: u32) -> ConvPath {
    ConvPath::Coop {
        size,
        subgroup: [ctx.info.subgroup_min_size, ctx.info.subgroup_max_size],
    }
}

/// Reference on the f16-rounded input and weights; bias and residual are added in f32 by the kernel.
fn want(c: &Case, d: &Data) -> CpuTensor {
    let res = CpuTensor::new(&d.oshape, d.r.clone());
    reference(
        c,
        &round_f16(&d.x),
        &round_f16(&d.w),
        c.bias.then_some(&d.b[..]),
        c.res.then_some(&res),
        c.pad,
    )
}

pub(crate) fn run(
    ctx: &GpuContext,
    size: u32,
    c: &Case,
    d: &Data,
    ks: &[ConvKernel],
) -> Vec<Vec<f32>> {
    let conv = layer(ctx, c, d);
    let mut g = Graph::with_conv_path(path(ctx, size));
    let tx = g.input("x", &c.x).unwrap();
    let tr = g.input("res", &d.oshape).unwrap();
    let outs: Vec<TensorId> = ks
        .iter()
        .map(|&k| {
            let label = format!("{} {k:?}", c.name);
            let o = conv2d_with(&mut g, &label, tx, &conv, c.res.then_some(tr), None, k).unwrap();
            g.mark_output(o);
            o
        })
        .collect();
    run_graph(ctx, g, &[(tx, &d.x), (tr, &d.r)], &outs)
}

/// Shapes beyond the fp32 table that matter to the tiling: channels and depth not multiples of the
/// matrix size, a tile spanning two images, more than one tile each way, VGG-like and MobileNet-like.
#[rustfmt::skip]
pub(crate) fn extra() -> Vec<Case> {
    let p0 = [0; 4];
    vec![
        Case { name: "C 19->37 k3 odd 13x29", x: [1, 19, 13, 29], c_out: 37, ..BASE },
        Case { name: "batch 3 1x1 C40->72 7x5", x: [3, 40, 7, 5], c_out: 72, k: [1, 1], pad: p0, ..BASE },
        Case { name: "C 64->128 k3 s2 0101 21x18 relu", x: [1, 64, 21, 18], c_out: 128, stride: [2, 2], pad: [0, 1, 0, 1], act: Activation::Relu, ..BASE },
        Case { name: "residual relu6 1x1 C96->24", x: [2, 96, 9, 9], c_out: 24, k: [1, 1], pad: p0, res: true, act: Activation::Relu6, ..BASE },
        Case { name: "K 3*27 conv1-like s2", x: [1, 3, 33, 31], c_out: 32, stride: [2, 2], pad: [0, 1, 0, 1], ..BASE },
    ]
}

#[test]
fn conv2d_coop_cases() {
    let Some(ctx) = gpu() else { return };
    for size in coop_sizes(ctx) {
        for (i, c) in cases().iter().chain(&extra()).enumerate() {
            let d = data(c, 7000 + 1000 * i as u64);
            let rounded = want(c, &d);
            let res = CpuTensor::new(&d.oshape, d.r.clone());
            let (b, r) = (c.bias.then_some(&d.b[..]), c.res.then_some(&res));
            let exact = reference(c, &d.x, &d.w, b, r, c.pad);
            // Auto keeps depthwise convs and narrow layers on the fp32 kernels.
            let cin_g = c.x[1] / c.groups;
            let auto_coop = pays(cin_g, c.c_out / c.groups, k_of(c));
            let got = run(ctx, size, c, &d, &[ConvKernel::Coop, ConvKernel::Auto]);
            for (k, got) in [ConvKernel::Coop, ConvKernel::Auto].iter().zip(got) {
                let case = format!("{} [{k:?}, {size}x{size}] K={}", c.name, k_of(c));
                let coop = *k == ConvKernel::Coop || auto_coop;
                let want = if coop { &rounded } else { &exact };
                assert_close(&case, &got, &want.data, atol(c), 0.0);
            }
        }
    }
}

/// The f16 reference matters: against the unrounded f32 reference the kernel is off by far more than
/// the tolerance, so the test would catch a kernel that silently skipped the cooperative path.
#[test]
fn conv2d_coop_rounds_to_f16() {
    let Some(ctx) = gpu() else { return };
    let c = Case {
        name: "f16 rounding visible",
        x: [1, 64, 12, 12],
        c_out: 64,
        ..BASE
    };
    let d = data(&c, 99);
    let exact = reference(&c, &d.x, &d.w, Some(&d.b), None, c.pad);
    for size in coop_sizes(ctx) {
        let got = &run(ctx, size, &c, &d, &[ConvKernel::Coop])[0];
        let worst = got
            .iter()
            .zip(&exact.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst > 3.0 * atol(&c),
            "{size}x{size}: max |f16-coop − f32 reference| = {worst}, expected f16 rounding above {}",
            3.0 * atol(&c)
        );
        assert!(worst < 0.05, "{size}x{size}: f16 error {worst} too large");
    }
}

/// Two convs write the halves of one tensor at channel offsets (the SSH concat) on the coop kernel.
#[test]
fn conv2d_coop_into_channel_offset() {
    let Some(ctx) = gpu() else { return };
    let a = Case {
        name: "into",
        x: [2, 24, 9, 11],
        c_out: 40,
        act: Activation::Relu,
        ..BASE
    };
    let d = data(&a, 5);
    for size in coop_sizes(ctx) {
        let conv = layer(ctx, &a, &d);
        let mut g = Graph::with_conv_path(path(ctx, size));
        let tx = g.input("x", &a.x).unwrap();
        let cat = g.tensor("cat", &[2, 96, 9, 11]).unwrap();
        conv2d_with(
            &mut g,
            "hi",
            tx,
            &conv,
            None,
            Some((cat, 56)),
            ConvKernel::Coop,
        )
        .unwrap();
        conv2d_with(
            &mut g,
            "lo",
            tx,
            &conv,
            None,
            Some((cat, 0)),
            ConvKernel::Coop,
        )
        .unwrap();
        g.mark_output(cat);
        let got = &run_graph(ctx, g, &[(tx, &d.x)], &[cat])[0];
        let w = want(&a, &d);
        let hw = 9 * 11;
        for n in 0..2 {
            let img = &w.data[n * 40 * hw..(n + 1) * 40 * hw];
            for (c0, name) in [(0, "lo"), (56, "hi")] {
                let at = (n * 96 + c0) * hw;
                assert_close(
                    &format!("{size} {name} n{n}"),
                    &got[at..at + 40 * hw],
                    img,
                    atol(&a),
                    0.0,
                );
            }
            // Channels 40..56 are written by neither conv: still the arena's zeros.
            let gap = &got[(n * 96 + 40) * hw..(n * 96 + 56) * hw];
            assert!(
                gap.iter().all(|&v| v == 0.0),
                "{size}: a conv wrote outside its channels"
            );
        }
    }
}

/// A graph not built for the cooperative path refuses the forced kernel with an error naming the layer.
#[test]
fn conv2d_coop_needs_coop_graph() {
    let Some(ctx) = gpu() else { return };
    let c = Case { name: "x", ..BASE };
    let d = data(&c, 1);
    let conv = layer(ctx, &c, &d);
    let mut g = Graph::new();
    let tx = g.input("x", &c.x).unwrap();
    let e = conv2d_with(&mut g, "layer7", tx, &conv, None, None, ConvKernel::Coop).unwrap_err();
    assert!(e.to_string().contains("layer7"), "{e}");
}
