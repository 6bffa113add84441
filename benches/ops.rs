//! Operator case tables at real network sizes. Each conv runs as a one-step plan (submit + wait) on the
//! entry `Auto` picks; with `SSHFACE_BENCH_BASELINE=1` also on the entry that ran the conv before
//! the direct 1x1 and 3x3-depthwise entries (GEMM 1x1, generic depthwise) and on the naive
//! one-output-per-thread entry (off by default: on lavapipe it takes about 50 s per VGG conv3_2 iteration).
//! Every conv that is not depthwise also runs on the 64-thread GEMM (`Gemm`) and on the 256-thread
//! 128×128-tile GEMM (`Gemm128`), side by side. Where the adapter has f16 cooperative matrices,
//! every conv that is not depthwise also runs on the cooperative-matrix kernel, side by side with the
//! fp32 one.
//! Skips with a printed reason when no GPU adapter exists. Throughput is in FLOP/s (2 per MAC), shown
//! by criterion as "elem/s".

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sshface::gpu::{ConvPath, Graph};
use sshface::ops::conv2d::{conv2d_with, Conv2d, ConvKernel};
use sshface::ops::Activation;
use sshface::{AdapterOptions, GpuContext};

struct ConvCase {
    name: &'static str,
    x: [usize; 4],
    c_out: usize,
    k: usize,
    stride: usize,
    groups: usize,
}

const CASES: &[ConvCase] = &[
    // VGG-16 conv3_2 at a 600x800 input (feature map /8 = 75x100).
    ConvCase {
        name: "vgg16.conv3_2 1x256x75x100 k3",
        x: [1, 256, 75, 100],
        c_out: 256,
        k: 3,
        stride: 1,
        groups: 1,
    },
    // MobileNetV2 expansion 1x1 at stride 8 of a 640x640 input.
    ConvCase {
        name: "mnv2.expand 1x96x80x80 -> 576 1x1",
        x: [1, 96, 80, 80],
        c_out: 576,
        k: 1,
        stride: 1,
        groups: 1,
    },
    // MobileNetV2 depthwise 3x3 at stride 16.
    ConvCase {
        name: "mnv2.dw 1x576x40x40 k3",
        x: [1, 576, 40, 40],
        c_out: 576,
        k: 3,
        stride: 1,
        groups: 576,
    },
    // RetinaFace-MNv2 at 512x512: the small-C_in 1x1 expansion at stride 2 (conv2d_1x1_direct).
    ConvCase {
        name: "mnv2.block1.expand 1x16x256x256 -> 96 1x1",
        x: [1, 16, 256, 256],
        c_out: 96,
        k: 1,
        stride: 1,
        groups: 1,
    },
    // Its stride-2 depthwise (conv2d_dw3).
    ConvCase {
        name: "mnv2.block1.dw 1x96x256x256 k3 s2",
        x: [1, 96, 256, 256],
        c_out: 96,
        k: 3,
        stride: 2,
        groups: 96,
    },
    // SSH head: few output channels on a large map (narrow GEMM tile).
    ConvCase {
        name: "ssh.m1_cls 1x128x75x100 -> 4 1x1",
        x: [1, 128, 75, 100],
        c_out: 4,
        k: 1,
        stride: 1,
        groups: 1,
    },
];

fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

fn bench_conv2d(c: &mut Criterion) {
    let ctx = match GpuContext::new(&AdapterOptions::default()) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("SKIP conv2d benchmarks (no GPU adapter): {e}");
            return;
        }
    };
    eprintln!("conv2d benchmarks on {}", ctx.describe());
    let baseline = std::env::var("SSHFACE_BENCH_BASELINE").is_ok_and(|v| v == "1");
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(10);
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.measurement_time(std::time::Duration::from_secs(2));
    for (i, case) in CASES.iter().enumerate() {
        let wshape = [case.c_out, case.x[1] / case.groups, case.k, case.k];
        let w = pseudo_random(wshape.iter().product(), i as u32 * 3 + 1);
        let b = pseudo_random(case.c_out, i as u32 * 3 + 2);
        let x = pseudo_random(case.x.iter().product(), i as u32 * 3 + 3);
        let conv = Conv2d::new(
            ctx.weight("w", &w, &wshape).unwrap(),
            Some(ctx.weight("b", &b, &[case.c_out]).unwrap()),
        )
        .with_stride([case.stride; 2])
        .with_groups(case.groups)
        .with_act(Activation::Relu);
        let [n, _, ho, wo] = conv.out_shape(case.name, case.x).unwrap();
        let flops = 2 * n * case.c_out * ho * wo * wshape[1] * case.k * case.k;
        group.throughput(Throughput::Elements(flops as u64));
        let mut kernels = vec![(ConvPath::F32, ConvKernel::Auto)];
        // The 64-thread GEMM beside the 256-thread tier (Auto picks the latter only on GPUs).
        if case.groups != case.x[1] {
            kernels.push((ConvPath::F32, ConvKernel::Gemm));
            kernels.push((ConvPath::F32, ConvKernel::Gemm128));
        }
        let coop = ConvPath::resolve(sshface::Precision::Auto, &ctx).unwrap();
        if coop != ConvPath::F32 && case.groups != case.x[1] {
            kernels.push((coop, ConvKernel::Coop));
        }
        if baseline {
            if case.groups == case.x[1] {
                kernels.push((ConvPath::F32, ConvKernel::Depthwise));
            } else if case.k == 1 && case.stride == 1 {
                kernels.push((ConvPath::F32, ConvKernel::Pointwise));
            }
            kernels.push((ConvPath::F32, ConvKernel::Naive));
        }
        for (path, kernel) in kernels {
            let mut g = Graph::with_conv_path(path);
            let tx = g.input("x", &case.x).unwrap();
            let o = conv2d_with(&mut g, case.name, tx, &conv, None, None, kernel).unwrap();
            g.mark_output(o);
            let plan = g.compile(&ctx).unwrap();
            plan.write(&ctx, tx, &x).unwrap();
            plan.run(&ctx, &[]).unwrap();
            let id = BenchmarkId::new(case.name, format!("{kernel:?} {}", path.describe()));
            group.bench_function(id, |bch| bch.iter(|| plan.run(&ctx, &[]).unwrap()));
        }
    }
    group.finish();
}

criterion_group!(benches, bench_conv2d);
criterion_main!(benches);
