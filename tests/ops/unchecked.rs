//! The conv2d case tables with shader runtime checks off (`ShaderChecks::Off`): every kernel tier (the 64-thread
//! GEMM, conv2d_gemm's 256-thread tiles, 1x1, depthwise, dw3, naive, cooperative matrices) gives exactly the bits it
//! gives with checks on, on the same seeded data. Accuracy against the reference is the other tables' job.

use crate::common::*;
use crate::conv2d::{cases, data, layer, run_case, Case};
use sshface::gpu::{Graph, TensorId};
use sshface::ops::conv2d::{conv2d_with, ConvKernel};
use sshface::GpuContext;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn contexts() -> Option<(&'static GpuContext, &'static GpuContext)> {
    Some((gpu()?, gpu_unchecked()?))
}

#[test]
fn conv2d_tiers_identical_unchecked() {
    let Some((on, off)) = contexts() else { return };
    for (i, c) in cases().iter().enumerate() {
        let d = data(c, 1000 * i as u64);
        let (a, b) = (run_case(on, c, &d), run_case(off, c, &d));
        for ((k, a), (_, b)) in a.iter().zip(&b) {
            assert!(bits(a) == bits(b), "{} [{k:?}]: checks off differ", c.name);
        }
    }
    assert!(off.unchecked_modules() > 0, "checks off never reached wgpu");
    assert_eq!(on.unchecked_modules(), 0);
}

/// conv2d_gemm's 256-thread tier on its own table (wide, small, narrow and head tiles; vec4 entry).
#[test]
fn conv2d_gemm_identical_unchecked() {
    let Some((on, off)) = contexts() else { return };
    let run = |ctx: &GpuContext, c: &Case, d: &crate::conv2d::Data| {
        let conv = layer(ctx, c, d);
        let mut g = Graph::new().with_big_tiles(true);
        let tx = g.input("x", &c.x).unwrap();
        let tr = g.input("res", &d.oshape).unwrap();
        let o = conv2d_with(
            &mut g,
            c.name,
            tx,
            &conv,
            c.res.then_some(tr),
            None,
            ConvKernel::Gemm128,
        );
        let o: TensorId = o.unwrap();
        g.mark_output(o);
        assert_eq!(g.steps()[0].shader.name, "conv2d_gemm", "{}", c.name);
        run_graph(ctx, g, &[(tx, &d.x), (tr, &d.r)], &[o]).remove(0)
    };
    for (i, c) in crate::conv2d_gemm::cases().iter().enumerate() {
        let d = data(c, 3000 + 100 * i as u64);
        assert!(
            bits(&run(on, c, &d)) == bits(&run(off, c, &d)),
            "{}: checks off differ",
            c.name
        );
    }
}

#[test]
fn conv2d_coop_identical_unchecked() {
    let Some((on, off)) = contexts() else { return };
    for size in coop_sizes(on) {
        for (i, c) in cases()
            .iter()
            .chain(&crate::conv2d_coop::extra())
            .enumerate()
        {
            let d = data(c, 7000 + 1000 * i as u64);
            let a = crate::conv2d_coop::run(on, size, c, &d, &[ConvKernel::Coop]);
            let b = crate::conv2d_coop::run(off, size, c, &d, &[ConvKernel::Coop]);
            assert!(
                bits(&a[0]) == bits(&b[0]),
                "{} [coop {size}x{size}]: checks off differ",
                c.name
            );
        }
    }
}
