//! copy_rows.wgsl vs reference::copy_rows: a copy, so exact (atol 0). At f16 storage (copy_rows_f16.wgsl)
//! the table runs on inputs rounded to f16; the copy widens to f32 and narrows back, exact for an f16 value:
//! atol 0 too.

use super::f16_maps::{check_at, stored};
use crate::common::*;
use sshface::gpu::{DType, Graph};
use sshface::ops::copy_rows::copy_rows;
use sshface::reference::{copy_rows as r, CpuTensor};

/// (name, [N, C, H_src, W], src_row, H_dst, dst_row, rows)
type Case = (&'static str, [usize; 4], usize, usize, usize, usize);

/// Rows no copy writes keep this value (exact in f16): checks that the copy stays inside its band.
const SENTINEL: f32 = 7.0;

/// The case table at maps of `dtype`. The destination is an input the host fills with SENTINEL (`ops::fill`
/// writes 32-bit words, not f16 elements).
fn check_cases(dtype: DType) {
    let ctx = gpu().expect("checked by caller");
    let cases: &[Case] = &[
        ("slice odd 9x17x34", [1, 9, 17, 34], 3, 7, 0, 7),
        ("paste into the middle", [1, 5, 4, 13], 0, 11, 6, 4),
        ("batch 2, one row", [2, 3, 5, 7], 4, 3, 1, 1),
        ("whole map", [2, 64, 10, 12], 0, 10, 0, 10),
    ];
    for (i, &(name, xs, sr, hd, dr, rows)) in cases.iter().enumerate() {
        let x = stored(dtype, rand_vec(i as u64, xs.iter().product(), -1.0, 1.0));
        let ds = [xs[0], xs[1], hd, xs[3]];
        let init = vec![SENTINEL; ds.iter().product()];
        let mut g = Graph::new();
        let tx = g.input_as("x", &xs, dtype).unwrap();
        let out = g.input_as("out", &ds, dtype).unwrap();
        copy_rows(&mut g, name, tx, sr, out, dr, rows).unwrap();
        let got = run_graph(ctx, g, &[(tx, &x), (out, &init)], &[out]);
        let mut want = CpuTensor::new(&ds, init);
        r::copy_rows(&CpuTensor::new(&xs, x), sr, &mut want, dr, rows);
        let name = format!("{name} [{dtype:?}]");
        assert_close(&name, &got[0], &want.data, 0.0, 0.0);
    }
}

#[test]
fn copy_rows_cases() {
    check_at(DType::F32, check_cases);
}

#[test]
fn copy_rows_f16_cases() {
    check_at(DType::F16, check_cases);
}

/// An f16 source and an f32 destination (or the reverse) is refused, naming the layer and both tensors.
#[test]
fn copy_rows_rejects_mixed_dtypes() {
    for (dx, dout) in [(DType::F16, DType::F32), (DType::F32, DType::F16)] {
        let mut g = Graph::new();
        let x = g.input_as("conv1_1", &[1, 2, 5, 4], dx).unwrap();
        let o = g.tensor_as("band", &[1, 2, 3, 4], dout).unwrap();
        let e = copy_rows(&mut g, "conv1[strip 2/3]", x, 0, o, 0, 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("conv1[strip 2/3]")
                && e.contains("mixed element types")
                && e.contains(&format!("'conv1_1' is {dx:?}"))
                && e.contains(&format!("'band' is {dout:?}")),
            "{dx:?} -> {dout:?}: {e}"
        );
    }
}

#[test]
fn copy_rows_rejects_bad_ranges() {
    let mut g = Graph::new();
    let x = g.input("x", &[1, 2, 5, 4]).unwrap();
    let o = g.tensor("band", &[1, 2, 3, 4]).unwrap();
    let e = copy_rows(&mut g, "conv1[strip 2/3]", x, 3, o, 0, 3)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("conv1[strip 2/3]") && e.contains("out of range"),
        "{e}"
    );
    let o2 = g.tensor("wide", &[1, 2, 3, 5]).unwrap();
    let e = copy_rows(&mut g, "paste", x, 0, o2, 0, 3)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("equal N, C, W") && e.contains("[1, 2, 3, 5]"),
        "{e}"
    );
}
