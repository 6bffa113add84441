//! add.wgsl vs reference::add::add. Exact up to f32 rounding of one addition: atol 1e-6.
//!
//! At f16 storage (add_f16.wgsl) the table runs on inputs rounded to f16 (the reference adds the same values);
//! the shader adds in f32 as above and rounds the sum to f16 on the store, which adds half an f16 ulp:
//! atol 1e-6 plus rtol 2^-11 ≈ 4.9e-4.

use super::f16_maps::{check_at, store_rtol, stored};
use crate::common::*;
use sshface::gpu::{DType, Graph};
use sshface::ops::{add::add, Activation};

/// The case table at maps of `dtype`.
fn check_cases(dtype: DType) {
    let ctx = gpu().expect("checked by caller");
    let cases: &[(&str, &[usize], Activation)] = &[
        ("odd 17x34x9", &[1, 9, 17, 34], Activation::None),
        ("batch2 relu", &[2, 3, 5, 7], Activation::Relu),
        ("relu6", &[1, 64, 20, 20], Activation::Relu6),
        ("leaky", &[1, 1, 1, 1], Activation::Leaky(0.1)),
        (
            "2d dispatch > 65535 groups",
            &[1, 1, 1, 65_536 * 256 + 3],
            Activation::None,
        ),
    ];
    for (i, &(name, shape, act)) in cases.iter().enumerate() {
        let n: usize = shape.iter().product();
        let a = stored(dtype, rand_vec(i as u64, n, -8.0, 8.0));
        let b = stored(dtype, rand_vec(100 + i as u64, n, -8.0, 8.0));
        let mut g = Graph::new();
        let ta = g.input_as("a", shape, dtype).unwrap();
        let tb = g.input_as("b", shape, dtype).unwrap();
        let out = add(&mut g, "sum", ta, tb, act).unwrap();
        assert_eq!(g.dtype(out), dtype, "{name}: output keeps the inputs' type");
        g.mark_output(out);
        let got = run_graph(ctx, g, &[(ta, &a), (tb, &b)], &[out]);
        let want = sshface::reference::add::add(&a, &b, act);
        let name = format!("{name} [{dtype:?}]");
        assert_close(&name, &got[0], &want, 1e-6, store_rtol(dtype));
    }
}

#[test]
fn add_cases() {
    check_at(DType::F32, check_cases);
}

#[test]
fn add_f16_cases() {
    check_at(DType::F16, check_cases);
}

#[test]
fn add_rejects_mismatched_shapes() {
    let mut g = Graph::new();
    let a = g.input("a", &[1, 2, 3, 4]).unwrap();
    let b = g.input("b", &[1, 2, 4, 3]).unwrap();
    let e = add(&mut g, "fuse", a, b, Activation::None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fuse") && e.contains("[1, 2, 3, 4]") && e.contains("[1, 2, 4, 3]"),
        "{e}"
    );
}

/// One f16 and one f32 operand (either order) is refused, naming the layer and both tensors.
#[test]
fn add_rejects_mixed_dtypes() {
    for (da, db) in [(DType::F16, DType::F32), (DType::F32, DType::F16)] {
        let mut g = Graph::new();
        let a = g.input_as("m1.conv", &[1, 2, 3, 4], da).unwrap();
        let b = g.input_as("m1.up", &[1, 2, 3, 4], db).unwrap();
        let e = add(&mut g, "m1.fuse", a, b, Activation::None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m1.fuse")
                && e.contains("mixed element types")
                && e.contains(&format!("'m1.conv' is {da:?}"))
                && e.contains(&format!("'m1.up' is {db:?}")),
            "{da:?} + {db:?}: {e}"
        );
    }
}
