//! upsample_nearest.wgsl vs reference::upsample_nearest (TF's f32 index rule). Nearest copies an input value,
//! so every case is exact: atol 0, rtol 0. At f16 storage (upsample_nearest_f16.wgsl) the table runs on
//! inputs rounded to f16; the copy widens to f32 and narrows back, exact for an f16 value: atol 0, rtol 0.

use super::f16_maps::{check_at, dtypes, stored};
use crate::common::*;
use sshface::gpu::{DType, Graph};
use sshface::ops::upsample_nearest::upsample_nearest;
use sshface::reference::upsample_nearest::{nearest_src, upsample_nearest as reference};
use sshface::reference::CpuTensor;

/// Upsamples `data` stored as `dtype` (f16: rounded on the write).
fn run(shape: &[usize], out_hw: [usize; 2], data: &[f32], dtype: DType) -> Vec<f32> {
    let ctx = gpu().expect("checked by caller");
    let mut g = Graph::new();
    let x = g.input_as("fpn.lateral3", shape, dtype).unwrap();
    let out = upsample_nearest(&mut g, "up3", x, out_hw).unwrap();
    assert_eq!(g.dtype(out), dtype, "output keeps the input's element type");
    g.mark_output(out);
    assert_eq!(g.shape(out), [shape[0], shape[1], out_hw[0], out_hw[1]]);
    run_graph(ctx, g, &[(x, data)], &[out]).remove(0)
}

/// The case table at maps of `dtype`.
fn check_cases(dtype: DType) {
    let cases: &[(&str, [usize; 4], [usize; 2])] = &[
        ("exact 2x, 17x34, C=9", [1, 9, 17, 34], [34, 68]),
        ("exact 2x, batch 2, C=65", [2, 65, 5, 7], [10, 14]),
        ("fpn odd: 2x then one less", [1, 4, 10, 13], [20, 25]),
        ("non-2x 3x upscale", [1, 3, 4, 5], [12, 15]),
        ("non-integer 7x9 -> 16x20", [2, 3, 7, 9], [16, 20]),
        ("downscale 9x9 -> 4x5", [1, 2, 9, 9], [4, 5]),
        ("1x1 -> 3x2", [1, 3, 1, 1], [3, 2]),
        // 4096·4098 outputs > 65,535·256: exercises the 2-D dispatch split.
        (
            "2d dispatch > 65535 groups",
            [1, 1, 2048, 2049],
            [4096, 4098],
        ),
    ];
    for (i, (name, shape, out_hw)) in cases.iter().enumerate() {
        let n: usize = shape.iter().product();
        let data = stored(dtype, rand_vec(57 + i as u64, n, -5.0, 5.0));
        let got = run(shape, *out_hw, &data, dtype);
        let want = reference(&CpuTensor::new(shape, data), *out_hw);
        assert_close(&format!("{name} [{dtype:?}]"), &got, &want.data, 0.0, 0.0);
    }
}

#[test]
fn upsample_nearest_cases() {
    check_at(DType::F32, check_cases);
}

#[test]
fn upsample_nearest_f16_cases() {
    check_at(DType::F16, check_cases);
}

#[test]
fn nearest_index_rule() {
    // At exactly 2x the rule is dst >> 1.
    for n in 1..40 {
        for d in 0..2 * n {
            assert_eq!(nearest_src(d, n, 2 * n), d >> 1, "n {n} dst {d}");
        }
    }
    // By hand: 3 -> 5 gives floor((d + 0.5)·0.6) = 0, 0, 1, 2, 2; half-pixel-free `d·in/out` would give 0, 0, 1, 1, 2,
    // so a shader without half-pixel centres fails here.
    let got: Vec<usize> = (0..5).map(|d| nearest_src(d, 3, 5)).collect();
    assert_eq!(got, [0, 0, 1, 2, 2]);
    // 2x with one row less (FPN on odd maps): 5 -> 9 clamps to the last row.
    let got: Vec<usize> = (0..9).map(|d| nearest_src(d, 5, 9)).collect();
    assert_eq!(got, [0, 0, 1, 1, 2, 3, 3, 4, 4]);
}

/// Hand values (exact in f16 too) at maps of `dtype`.
fn check_hand_values(dtype: DType) {
    let got = run(&[1, 1, 1, 3], [1, 5], &[10.0, 20.0, 30.0], dtype);
    assert_eq!(got, [10.0, 10.0, 20.0, 30.0, 30.0], "{dtype:?}");
    let got = run(&[1, 1, 2, 2], [4, 4], &[1.0, 2.0, 3.0, 4.0], dtype);
    #[rustfmt::skip]
    let want = [
        1.0, 1.0, 2.0, 2.0,
        1.0, 1.0, 2.0, 2.0,
        3.0, 3.0, 4.0, 4.0,
        3.0, 3.0, 4.0, 4.0,
    ];
    assert_eq!(got, want, "{dtype:?}");
}

#[test]
fn upsample_nearest_hand_values() {
    let Some(ctx) = gpu() else { return };
    for dtype in dtypes(ctx) {
        check_hand_values(dtype);
    }
}

#[test]
fn upsample_nearest_rejects_empty_target() {
    let mut g = Graph::new();
    let x = g.input("fpn.lateral3", &[1, 64, 5, 7]).unwrap();
    let e = upsample_nearest(&mut g, "up3", x, [10, 0])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("up3") && e.contains("[10, 0]") && e.contains("[1, 64, 5, 7]"),
        "{e}"
    );
}
