//! copy_rows.wgsl vs reference::copy_rows: a copy, so exact (atol 0).

use crate::common::*;
use sshface::gpu::Graph;
use sshface::ops::copy_rows::copy_rows;
use sshface::ops::fill::fill;
use sshface::reference::{copy_rows as r, CpuTensor};

/// (name, [N, C, H_src, W], src_row, H_dst, dst_row, rows)
type Case = (&'static str, [usize; 4], usize, usize, usize, usize);

#[test]
fn copy_rows_cases() {
    let Some(ctx) = gpu() else { return };
    let cases: &[Case] = &[
        ("slice odd 9x17x34", [1, 9, 17, 34], 3, 7, 0, 7),
        ("paste into the middle", [1, 5, 4, 13], 0, 11, 6, 4),
        ("batch 2, one row", [2, 3, 5, 7], 4, 3, 1, 1),
        ("whole map", [2, 64, 10, 12], 0, 10, 0, 10),
    ];
    for (i, &(name, xs, sr, hd, dr, rows)) in cases.iter().enumerate() {
        let x = rand_vec(i as u64, xs.iter().product(), -1.0, 1.0);
        let ds = [xs[0], xs[1], hd, xs[3]];
        let mut g = Graph::new();
        let tx = g.input("x", &xs).unwrap();
        let out = g.tensor("out", &ds).unwrap();
        fill(&mut g, "clear", out, 7f32.to_bits()).unwrap();
        copy_rows(&mut g, name, tx, sr, out, dr, rows).unwrap();
        g.mark_output(out);
        let got = run_graph(ctx, g, &[(tx, &x)], &[out]);
        let mut want = CpuTensor::new(&ds, vec![7.0; ds.iter().product()]);
        r::copy_rows(&CpuTensor::new(&xs, x), sr, &mut want, dr, rows);
        assert_close(name, &got[0], &want.data, 0.0, 0.0);
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
