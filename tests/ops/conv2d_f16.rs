//! conv2d at f16 storage: every entry point of `conv2d_f16.wgsl` (generated from conv2d.wgsl by build.rs)
//! and the cooperative-matrix kernel on f16 maps, against the f64 reference.
//!
//! Inputs and weights are stored as f16, so the reference runs on their f16-rounded values; the kernels
//! then compute in f32 as at f32 storage (atol 1e-4·sqrt(K)) and round the result to f16 on the store,
//! which adds up to half an f16 ulp: rtol 2^-11 (taken as 1e-3). Bias and residual: the bias stays f32,
//! the residual is an f16 map (rounded in the reference too).

use super::conv2d::{cases, data, k_of, layer, reference, Case, Data};
use crate::common::*;
use sshface::gpu::{ConvPath, DType, Graph, TensorId};
use sshface::ops::conv2d::{conv2d_with, ConvKernel};
use sshface::reference::CpuTensor;
use sshface::GpuContext;

fn f16_kernels(c: &Case) -> Vec<ConvKernel> {
    let mut ks = vec![
        ConvKernel::Auto,
        ConvKernel::Gemm,
        ConvKernel::Gemm128,
        ConvKernel::Naive,
    ];
    if c.k == [1, 1] && c.stride == [1, 1] && c.pad == [0; 4] {
        ks.extend([ConvKernel::Pointwise, ConvKernel::PointwiseDirect]);
    }
    if c.x[1] == c.groups {
        ks.push(ConvKernel::Depthwise);
        if c.k == [3, 3] && c.dil == [1, 1] && c.stride[0] == c.stride[1] && c.stride[0] <= 2 {
            ks.push(ConvKernel::Depthwise3x3);
        }
    }
    ks
}

/// Runs `c` with f16 maps on each kernel in one graph built for `path`.
fn run(ctx: &GpuContext, path: ConvPath, c: &Case, d: &Data, ks: &[ConvKernel]) -> Vec<Vec<f32>> {
    let mut conv = layer(ctx, c, d);
    conv.weight = ctx.weight_as("w", &d.w, &d.wshape, DType::F16).unwrap();
    let mut g = Graph::with_numerics(path, DType::F16);
    let tx = g.input_as("x", &c.x, DType::F16).unwrap();
    let tr = g.input_as("res", &d.oshape, DType::F16).unwrap();
    let outs: Vec<TensorId> = ks
        .iter()
        .map(|&k| {
            let label = format!("{} {k:?}", c.name);
            let o = conv2d_with(&mut g, &label, tx, &conv, c.res.then_some(tr), None, k).unwrap();
            assert_eq!(g.dtype(o), DType::F16);
            g.mark_output(o);
            o
        })
        .collect();
    run_graph(ctx, g, &[(tx, &d.x), (tr, &d.r)], &outs)
}

fn want(c: &Case, d: &Data) -> CpuTensor {
    let res = CpuTensor::new(&d.oshape, round_f16(&d.r));
    let b = c.bias.then_some(&d.b[..]);
    reference(
        c,
        &round_f16(&d.x),
        &round_f16(&d.w),
        b,
        c.res.then_some(&res),
        c.pad,
    )
}

#[test]
fn conv2d_f16_cases() {
    let Some(ctx) = gpu() else { return };
    if !has_f16(ctx) {
        return;
    }
    for (i, c) in cases().iter().enumerate() {
        let d = data(c, 3000 + 1000 * i as u64);
        let want = want(c, &d);
        let ks = f16_kernels(c);
        for (k, got) in ks.iter().zip(run(ctx, ConvPath::F32, c, &d, &ks)) {
            let case = format!("{} [{k:?}, f16 maps] K={}", c.name, k_of(c));
            assert_close(
                &case,
                &got,
                &want.data,
                1e-4 * (k_of(c) as f32).sqrt(),
                1e-3,
            );
        }
    }
}

#[test]
fn conv2d_coop_f16_maps_cases() {
    let Some(ctx) = gpu() else { return };
    for size in coop_sizes(ctx) {
        let path = ConvPath::Coop {
            size,
            subgroup: [ctx.info.subgroup_min_size, ctx.info.subgroup_max_size],
        };
        for (i, c) in cases()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.x[1] != c.groups)
        {
            let d = data(c, 5000 + 1000 * i as u64);
            let want = want(c, &d);
            let got = &run(ctx, path, c, &d, &[ConvKernel::Coop])[0];
            let case = format!("{} [Coop {size}x{size}, f16 maps] K={}", c.name, k_of(c));
            assert_close(&case, got, &want.data, 1e-4 * (k_of(c) as f32).sqrt(), 1e-3);
        }
    }
}

/// f16 maps with f32 weights are refused with an error naming the weight and both types.
#[test]
fn conv2d_f16_needs_f16_weights() {
    let Some(ctx) = gpu() else { return };
    let c = cases()[0];
    let d = data(&c, 1);
    let conv = layer(ctx, &c, &d);
    let mut g = Graph::with_numerics(ConvPath::F32, DType::F16);
    let tx = g.input_as("x", &c.x, DType::F16).unwrap();
    let e = conv2d_with(&mut g, "l", tx, &conv, None, None, ConvKernel::Auto).unwrap_err();
    assert!(
        e.to_string()
            .contains("weight 'w' is stored as F32, the feature maps as F16"),
        "{e}"
    );
    // Mixed element types between input and residual are refused too.
    let mut g = Graph::new();
    let tx = g.input_as("x", &c.x, DType::F16).unwrap();
    let tr = g.input("res", &d.oshape).unwrap();
    let conv = layer(ctx, &c, &d);
    let e = conv2d_with(&mut g, "l", tx, &conv, Some(tr), None, ConvKernel::Auto).unwrap_err();
    assert!(e.to_string().contains("mixed element types"), "{e}");
}
