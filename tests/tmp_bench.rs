// TEMPORARY (not committed): quick timings on lavapipe.
use sshface::gpu::Graph;
use sshface::ops::conv2d::{conv2d_with, Conv2d, ConvKernel};
use sshface::{AdapterOptions, GpuContext};
#[test]
fn tmp_bench() {
    let ctx = GpuContext::new(&AdapterOptions::default()).unwrap();
    eprintln!("wg storage {}", ctx.limits.max_compute_workgroup_storage_size);
    let cases: &[([usize; 4], usize, usize)] = &[([1, 128, 40, 50], 128, 3), ([1, 96, 40, 40], 192, 1)];
    for &(x, c_out, k) in cases {
        let wshape = [c_out, x[1], k, k];
        let w = vec![0.01f32; wshape.iter().product()];
        let conv = Conv2d::new(ctx.weight("w", &w, &wshape).unwrap(), None);
        let xs = vec![0.5f32; x.iter().product()];
        let flops = 2.0 * (c_out * x[1] * k * k * x[2] * x[3]) as f64;
        for (kernel, tile) in [(ConvKernel::Gemm, ""), (ConvKernel::Gemm128, "0"), (ConvKernel::Gemm128, "4"), (ConvKernel::Gemm, ""), (ConvKernel::Gemm128, "0"), (ConvKernel::Gemm128, "4")] {
            unsafe { std::env::set_var("TMP_TILE", tile) };
            let mut g = Graph::new();
            let tx = g.input("x", &x).unwrap();
            let o = conv2d_with(&mut g, "c", tx, &conv, None, None, kernel).unwrap();
            g.mark_output(o);
            let plan = g.compile(&ctx).unwrap();
            plan.write(&ctx, tx, &xs).unwrap();
            plan.run(&ctx, &[]).unwrap();
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t = std::time::Instant::now();
                plan.run(&ctx, &[]).unwrap();
                best = best.min(t.elapsed().as_secs_f64());
            }
            eprintln!("{x:?} -> {c_out} k{k} {kernel:?} {tile}: {:.1} ms, {:.2} GFLOP/s", best * 1e3, flops / best / 1e9);
        }
    }
}
