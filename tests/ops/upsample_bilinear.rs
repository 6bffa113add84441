//! upsample_bilinear.wgsl (closed form) vs reference::upsample_bilinear (literal Caffe transposed convolution
//! with the bilinear filler, then crop). Both sum the same ≤ 4 weighted terms in a different order; with inputs in
//! [−4, 4) each of the ≤ 7 f32 roundings costs ≤ ulp(4)/2 = 2.4e-7, so atol 2e-6 (rtol 0) bounds the difference.
//!
//! At f16 storage (upsample_bilinear_f16.wgsl) the table runs on inputs rounded to f16 (the reference reads the
//! same values); the shader computes in f32 as above and rounds its result to f16 on the store, which adds half
//! an f16 ulp: atol 2e-6 plus rtol 2^-11 ≈ 4.9e-4. The hand values are exact in f16 and stay exact.

use super::f16_maps::{check_at, dtypes, store_rtol, stored};
use crate::common::*;
use sshface::gpu::{DType, Graph};
use sshface::ops::upsample_bilinear::upsample_bilinear;
use sshface::reference::upsample_bilinear::{bilinear_kernel, upsample_bilinear as reference};
use sshface::reference::CpuTensor;

/// Upsamples `data` stored as `dtype` (f16: rounded on the write); returns the output shape and values.
fn run(shape: &[usize], out_hw: [usize; 2], data: &[f32], dtype: DType) -> (Vec<usize>, Vec<f32>) {
    let ctx = gpu().expect("checked by caller");
    let mut g = Graph::new();
    let x = g.input_as("conv5_128", shape, dtype).unwrap();
    let out = upsample_bilinear(&mut g, "conv5_128_up", x, out_hw).unwrap();
    assert_eq!(g.dtype(out), dtype, "output keeps the input's element type");
    g.mark_output(out);
    let shape = g.shape(out).to_vec();
    (shape, run_graph(ctx, g, &[(x, data)], &[out]).remove(0))
}

/// The case table at maps of `dtype`.
fn check_cases(dtype: DType) {
    let cases: &[(&str, [usize; 4], [usize; 2])] = &[
        ("full 2Hx2W, 17x34, C=9", [1, 9, 17, 34], [34, 68]),
        ("crop (2H-1)x(2W-1), batch 2", [2, 3, 9, 13], [17, 25]),
        ("odd x full target", [1, 5, 8, 11], [15, 22]),
        ("odd targets 7x9 from 6x6", [1, 2, 6, 6], [7, 9]),
        (
            "ssh M1 shape: L5 19x25 -> L4 38x49, C=16",
            [1, 16, 19, 25],
            [38, 49],
        ),
        ("1x1 input, full", [1, 3, 1, 1], [2, 2]),
        ("1x1 input, crop 1x1", [2, 3, 1, 1], [1, 1]),
        ("C=257 not a workgroup multiple", [1, 257, 3, 2], [6, 3]),
        // 4096·4098 outputs > 65,535·256: exercises the 2-D dispatch split.
        (
            "2d dispatch > 65535 groups",
            [1, 1, 2048, 2049],
            [4096, 4098],
        ),
    ];
    for (i, (name, shape, out_hw)) in cases.iter().enumerate() {
        let n: usize = shape.iter().product();
        let data = stored(dtype, rand_vec(31 + i as u64, n, -4.0, 4.0));
        let (got_shape, got) = run(shape, *out_hw, &data, dtype);
        let want = reference(&CpuTensor::new(shape, data), *out_hw);
        assert_eq!(got_shape, want.shape, "{name}: output shape");
        assert_eq!(want.shape, [shape[0], shape[1], out_hw[0], out_hw[1]]);
        let name = format!("{name} [{dtype:?}]");
        assert_close(&name, &got, &want.data, 2e-6, store_rtol(dtype));
    }
}

#[test]
fn upsample_bilinear_cases() {
    check_at(DType::F32, check_cases);
}

#[test]
fn upsample_bilinear_f16_cases() {
    check_at(DType::F16, check_cases);
}

#[test]
fn upsample_bilinear_attenuates_the_border() {
    // Hand-computed: per axis, ones give [0.75, 1, 1, 0.75] because the deconvolution sees zeros outside;
    // clamped (PyTorch align_corners=False) upsampling would give all ones. All values are exact in f32.
    #[rustfmt::skip]
    let want = [
        0.5625, 0.75, 0.75, 0.5625,
        0.75,   1.0,  1.0,  0.75,
        0.75,   1.0,  1.0,  0.75,
        0.5625, 0.75, 0.75, 0.5625,
    ];
    let x = CpuTensor::new(&[1, 1, 2, 2], vec![1.0; 4]);
    assert_eq!(reference(&x, [4, 4]).data, want, "reference");
    // Crop to 3x3 keeps the top-left.
    let cropped = [0.5625, 0.75, 0.75, 0.75, 1.0, 1.0, 0.75, 1.0, 1.0];
    assert_eq!(reference(&x, [3, 3]).data, cropped, "reference crop");
    let Some(ctx) = gpu() else { return };
    // A single impulse shows the kernel itself, proving the 0.25/0.75 taps land at the right offsets.
    #[rustfmt::skip]
    let impulse = [
        0.0, 0.0,    0.0,    0.0,
        0.0, 0.0625, 0.1875, 0.1875,
        0.0, 0.1875, 0.5625, 0.5625,
        0.0, 0.1875, 0.5625, 0.5625,
    ];
    for dtype in dtypes(ctx) {
        let up = |out_hw, x: &[f32]| run(&[1, 1, 2, 2], out_hw, x, dtype).1;
        assert_eq!(up([4, 4], &[1.0; 4]), want, "gpu {dtype:?}");
        assert_eq!(up([3, 3], &[1.0; 4]), cropped, "gpu crop {dtype:?}");
        assert_eq!(up([4, 4], &[0.0, 0.0, 0.0, 1.0]), impulse, "{dtype:?}");
    }
}

#[test]
fn bilinear_filler_kernel() {
    let w = [0.25f32, 0.75, 0.75, 0.25];
    let k = bilinear_kernel();
    for y in 0..4 {
        for x in 0..4 {
            assert_eq!(k[y][x], w[y] * w[x], "kernel[{y}][{x}]");
        }
    }
}

#[test]
fn upsample_bilinear_rejects_large_crop() {
    let err = |out_hw: [usize; 2]| {
        let mut g = Graph::new();
        let x = g.input("conv5_128", &[1, 128, 19, 25]).unwrap();
        upsample_bilinear(&mut g, "conv5_128_up", x, out_hw)
            .unwrap_err()
            .to_string()
    };
    for bad in [[39, 49], [38, 51], [0, 10]] {
        let e = err(bad);
        assert!(
            e.contains("conv5_128_up")
                && e.contains(&format!("{bad:?}"))
                && e.contains("[38, 50]")
                && e.contains("[1, 128, 19, 25]"),
            "{e}"
        );
    }
}
