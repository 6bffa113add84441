//! add.wgsl vs reference::add::add. Exact up to f32 rounding of one addition: atol 1e-6.

use crate::common::*;
use sshface::gpu::Graph;
use sshface::ops::{add::add, Activation};

#[test]
fn add_cases() {
    let Some(ctx) = gpu() else { return };
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
        let a = rand_vec(i as u64, n, -8.0, 8.0);
        let b = rand_vec(100 + i as u64, n, -8.0, 8.0);
        let mut g = Graph::new();
        let ta = g.input("a", shape).unwrap();
        let tb = g.input("b", shape).unwrap();
        let out = add(&mut g, "sum", ta, tb, act).unwrap();
        g.mark_output(out);
        let got = run_graph(ctx, g, &[(ta, &a), (tb, &b)], &[out]);
        let want = sshface::reference::add::add(&a, &b, act);
        assert_close(name, &got[0], &want, 1e-6, 0.0);
    }
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
