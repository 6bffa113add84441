//! max_pool.wgsl vs reference::max_pool (Caffe PoolingLayer transcribed). A max copies one input value, so
//! every case is exact: atol 0, rtol 0. At f16 storage (max_pool_f16.wgsl) the same table runs on inputs
//! rounded to f16: the shader widens them to f32, takes the max and narrows it back, which is exact for an
//! f16 value, so f16 is exact too (atol 0, rtol 0).

use super::f16_maps::{check_at, dtypes, stored};
use crate::common::*;
use sshface::gpu::{DType, Graph};
use sshface::ops::max_pool::{max_pool, Pool};
use sshface::reference::{self, CpuTensor};

const fn pool(k: usize, s: usize, p: usize, ceil_mode: bool) -> Pool {
    Pool {
        kernel: [k, k],
        stride: [s, s],
        pad: [p, p],
        ceil_mode,
    }
}
/// SSH's VGG-16 pools.
const SSH: Pool = pool(2, 2, 0, true);

/// Pools `data` stored as `dtype` (f16: rounded on the write); returns the output shape and values.
fn run(shape: &[usize], pool: &Pool, data: &[f32], dtype: DType) -> (Vec<usize>, Vec<f32>) {
    let ctx = gpu().expect("checked by caller");
    let mut g = Graph::new();
    let x = g.input_as("x", shape, dtype).unwrap();
    let out = max_pool(&mut g, "pool", x, pool).unwrap();
    assert_eq!(g.dtype(out), dtype, "output keeps the input's element type");
    g.mark_output(out);
    let shape = g.shape(out).to_vec();
    (shape, run_graph(ctx, g, &[(x, data)], &[out]).remove(0))
}

/// The case table at maps of `dtype`.
fn check_cases(dtype: DType) {
    let asym = Pool {
        kernel: [3, 2],
        stride: [2, 1],
        pad: [1, 0],
        ceil_mode: true,
    };
    // (name, [N, C, H, W], pool, expected [Ho, Wo] written out by hand from the Caffe rule)
    let cases: &[(&str, [usize; 4], Pool, [usize; 2])] = &[
        ("ssh ceil 17x34, C=9", [1, 9, 17, 34], SSH, [9, 17]),
        ("ssh ceil 75x97, C=3", [1, 3, 75, 97], SSH, [38, 49]),
        (
            "ssh ceil 1x1 (overhanging kernel)",
            [1, 5, 1, 1],
            SSH,
            [1, 1],
        ),
        ("ssh ceil 3x3", [1, 7, 3, 3], SSH, [2, 2]),
        ("ssh ceil batch 2, C=257", [2, 257, 5, 6], SSH, [3, 3]),
        (
            "k3s2p1 ceil 17x34",
            [1, 9, 17, 34],
            pool(3, 2, 1, true),
            [9, 18],
        ),
        (
            "k3s2p1 ceil 75x97",
            [2, 3, 75, 97],
            pool(3, 2, 1, true),
            [38, 49],
        ),
        ("k3s2p1 ceil 1x1", [1, 3, 1, 1], pool(3, 2, 1, true), [1, 1]),
        // 3x3 with p1: ceil gives 2 and the last window starts at 1 < H + p, so Caffe keeps it.
        ("k3s2p1 ceil 3x3", [1, 3, 3, 3], pool(3, 2, 1, true), [2, 2]),
        // 4x4 with p1: ceil((4+2-3)/2)+1 = 3; the 3rd window starts at 2·2 = 4 < H + p = 5, so it is kept.
        ("k3s2p1 ceil 4x4", [1, 2, 4, 4], pool(3, 2, 1, true), [3, 3]),
        // k2 s2 p1 on 3x3: ceil(3/2)+1 = 3, but (3-1)·2 = 4 >= H + p = 4, so Caffe drops it to 2.
        (
            "k2s2p1 ceil 3x3 (caffe clip rule)",
            [1, 2, 3, 3],
            pool(2, 2, 1, true),
            [2, 2],
        ),
        (
            "k2s2p0 floor 17x34",
            [1, 9, 17, 34],
            pool(2, 2, 0, false),
            [8, 17],
        ),
        (
            "k3s2p1 floor 75x97 batch 2",
            [2, 3, 75, 97],
            pool(3, 2, 1, false),
            [38, 49],
        ),
        (
            "k3s2p1 floor 4x4",
            [1, 2, 4, 4],
            pool(3, 2, 1, false),
            [2, 2],
        ),
        (
            "k3s1p1 floor 9x9 (mobilenet-like)",
            [1, 4, 9, 9],
            pool(3, 1, 1, false),
            [9, 9],
        ),
        (
            "asymmetric k3x2 s2x1 p1x0 ceil",
            [1, 3, 10, 7],
            asym,
            [6, 6],
        ),
    ];
    for (i, (name, shape, pool, want_hw)) in cases.iter().enumerate() {
        let n: usize = shape.iter().product();
        // All negative, so a shader that lets zero padding take part in the max returns 0 at the borders.
        let data = stored(dtype, rand_vec(7 + i as u64, n, -9.0, -1.0));
        let (got_shape, got) = run(shape, pool, &data, dtype);
        let want = reference::max_pool::max_pool(&CpuTensor::new(shape, data), pool);
        assert_eq!(got_shape, want.shape, "{name}: output shape");
        assert_eq!(&want.shape[2..], want_hw, "{name}: reference output size");
        let name = format!("{name} [{dtype:?}]");
        assert_close(&name, &got, &want.data, 0.0, 0.0);
    }
}

#[test]
fn max_pool_cases() {
    check_at(DType::F32, check_cases);
}

#[test]
fn max_pool_f16_cases() {
    check_at(DType::F16, check_cases);
}

/// Hand values (exact in f16 too) at maps of `dtype`.
fn check_hand_values(dtype: DType) {
    // 3x3 ceil k2 s2: the right column and bottom row form clipped 1-wide windows.
    let x = [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0];
    let (shape, got) = run(&[1, 1, 3, 3], &SSH, &x, dtype);
    assert_eq!(shape, [1, 1, 2, 2]);
    assert_eq!(got, [-1.0, -3.0, -7.0, -9.0], "{dtype:?}");
    // Zero padding would win every border window here; clipping keeps the negative maxima.
    let (shape, got) = run(&[1, 1, 3, 3], &pool(3, 2, 1, true), &x, dtype);
    assert_eq!(shape, [1, 1, 2, 2]);
    assert_eq!(got, [-1.0, -2.0, -4.0, -5.0], "{dtype:?}");
}

#[test]
fn max_pool_hand_values() {
    let Some(ctx) = gpu() else { return };
    for dtype in dtypes(ctx) {
        check_hand_values(dtype);
    }
}

#[test]
fn max_pool_reference_distinguishes_modes() {
    // The shape check of the case table can fail: floor mode (the MXNet/PyTorch ports' bug) differs on odd sizes.
    let x = CpuTensor::new(&[1, 1, 17, 34], rand_vec(1, 17 * 34, -1.0, 1.0));
    let ceil = reference::max_pool::max_pool(&x, &SSH);
    let floor = reference::max_pool::max_pool(&x, &pool(2, 2, 0, false));
    assert_eq!(ceil.shape, [1, 1, 9, 17]);
    assert_eq!(floor.shape, [1, 1, 8, 17]);
}

#[test]
fn max_pool_rejects_bad_windows() {
    let err = |shape: &[usize], p: Pool| {
        let mut g = Graph::new();
        let x = g.input("conv5_3", shape).unwrap();
        max_pool(&mut g, "pool6", x, &p).unwrap_err().to_string()
    };
    // Floor mode: kernel 3 on a 2-pixel map.
    let e = err(&[1, 4, 2, 8], pool(3, 2, 0, false));
    assert!(
        e.contains("pool6") && e.contains("kernel 3") && e.contains("[2, 8]"),
        "{e}"
    );
    // Ceil mode: kernel 4 overhangs the 1-pixel map by a full stride.
    let e = err(&[1, 4, 1, 1], pool(4, 2, 0, true));
    assert!(
        e.contains("pool6") && e.contains("kernel 4") && e.contains("[1, 1]"),
        "{e}"
    );
    // Pad as large as the kernel: a window of padding only.
    let e = err(&[1, 4, 8, 8], pool(2, 2, 2, false));
    assert!(e.contains("pool6") && e.contains("pad 2"), "{e}");
    // Stride larger than kernel, ceil mode, no pad: the last window starts past the input.
    let e = err(&[1, 4, 5, 5], pool(1, 3, 0, true));
    assert!(e.contains("pool6") && e.contains("past the input"), "{e}");
    let e = err(&[1, 4, 5, 5], pool(0, 1, 0, true));
    assert!(e.contains("pool6") && e.contains("at least 1"), "{e}");
    let e = err(&[4, 5, 5], SSH);
    assert!(e.contains("pool6") && e.contains("conv5_3"), "{e}");
}
