//! pack_kmajor.wgsl (weights repacked k-major for the wide GEMM tier) vs `reference::pack_kmajor`, exactly, in
//! f32 and f16; and the lifetime rules of packed weights: one packing per weight and layout shared by plans and
//! freed with the last, trainable weights repacked on every run (an update is never served stale).

use super::conv2d::{data, layer, reference, Case, BASE};
use crate::common::*;
use sshface::gpu::{DType, Graph};
use sshface::ops::conv2d::{conv2d_with, ConvKernel};
use sshface::ops::conv2d_gemm::packed_layout;
use sshface::ops::pack_kmajor::{derived, pack, Layout};
use sshface::reference::pack_kmajor::pack_kmajor;
use sshface::{AdapterOptions, GpuContext};

/// (groups, rows per group, k): a head (rows < 16), K not a multiple of 8, groups, rows just past a tile.
const CASES: [(usize, usize, usize); 5] = [
    (1, 4, 27),
    (2, 10, 64),
    (3, 7, 9),
    (1, 129, 75),
    (1, 64, 1152),
];

#[test]
fn pack_kmajor_matches_reference() {
    let Some(ctx) = gpu() else { return };
    let half = has_f16(ctx);
    for (i, &(groups, rows, k)) in CASES.iter().enumerate() {
        let l = packed_layout(groups, rows, k);
        let w = rand_vec(500 + i as u64, groups * rows * k, -2.0, 2.0);
        let shape = [groups * rows, k, 1, 1];
        for dtype in [DType::F32, DType::F16] {
            if dtype == DType::F16 && !half {
                continue;
            }
            let weight = ctx.weight_as("w", &w, &shape, dtype).unwrap();
            let mut g = Graph::new();
            let out = pack(&mut g, "case", &weight, l).unwrap();
            g.mark_output(out);
            let got = &run_graph(ctx, g, &[], &[out])[0];
            let src = if dtype == DType::F16 {
                round_f16(&w)
            } else {
                w.clone()
            };
            let want = pack_kmajor(&src, l);
            assert_eq!(got.len(), want.len(), "{l:?}");
            assert_eq!(got, &want, "{l:?} {dtype:?}: packed differs");
            assert!(
                l.mp.is_multiple_of(16) && l.kp.is_multiple_of(8) && l.mp >= rows && l.kp >= k,
                "{l:?}"
            );
        }
    }
}

#[test]
fn pack_kmajor_refuses_bad_layouts() {
    let Some(ctx) = gpu() else { return };
    let w = ctx.weight("conv9.w", &[0.0; 60], &[6, 10, 1, 1]).unwrap();
    let l = Layout {
        groups: 1,
        rows: 6,
        k: 10,
        kp: 16,
        mp: 16,
    };
    let mut g = Graph::new();
    for bad in [
        Layout { rows: 5, ..l },
        Layout { kp: 8, ..l },
        Layout { mp: 4, ..l },
    ] {
        let e = pack(&mut g, "conv9", &w, bad).unwrap_err().to_string();
        assert!(e.contains("conv9.w") && e.contains("[6, 10, 1, 1]"), "{e}");
    }
    let t = ctx
        .trainable("conv9.t", &[0.0; 60], &[6, 10, 1, 1])
        .unwrap();
    let e = derived("conv9", &t, l).unwrap_err().to_string();
    assert!(e.contains("trainable") && e.contains("conv9.t"), "{e}");
}

/// A context of the test's own: other tests of this binary run in parallel and pack weights on the shared one.
fn own_ctx() -> Option<GpuContext> {
    gpu()?;
    Some(GpuContext::new(&AdapterOptions::default()).unwrap())
}

fn case() -> Case {
    Case {
        name: "packed",
        x: [1, 24, 13, 11],
        c_out: 129,
        ..BASE
    }
}

/// Two plans binding one weight on the wide tier share one packed buffer, packed once; it is freed with the last
/// plan, and packed again (correctly) for the next.
#[test]
fn packed_weights_are_shared_and_freed_with_their_plans() {
    let Some(ctx) = &own_ctx() else { return };
    let c = case();
    let d = data(&c, 41);
    let conv = layer(ctx, &c, &d);
    let want = reference(&c, &d.x, &d.w, Some(&d.b), None, c.pad);
    let build = || {
        let mut g = Graph::new();
        let x = g.input("x", &c.x).unwrap();
        let o = conv2d_with(&mut g, "packed", x, &conv, None, None, ConvKernel::Gemm128).unwrap();
        g.mark_output(o);
        (g.compile(ctx).unwrap(), x, o)
    };
    let live0 = 0;
    assert_eq!(ctx.derived_live(), live0);
    let (p1, x1, o1) = build();
    let (p2, _, _) = build();
    assert_eq!(ctx.derived_live(), live0 + 1, "two plans, one packing");
    assert_eq!(p1.weight_bytes(), p2.weight_bytes());
    drop((p1, p2));
    assert_eq!(ctx.derived_live(), live0, "freed with the last plan");
    let (p3, x3, o3) = build();
    assert_eq!(ctx.derived_live(), live0 + 1);
    p3.write(ctx, x3, &d.x).unwrap();
    let got = &p3.run_f32(ctx, &[o3]).unwrap()[0];
    assert_close(
        "repacked after the plans were dropped",
        got,
        &want.data,
        1e-3,
        0.0,
    );
    let _ = (x1, o1);
}

/// A trainable weight on the wide tier is repacked inside the plan: after an in-place update the next run uses
/// the new values (a packing cached once would serve the old ones).
#[test]
fn trainable_weights_are_repacked_every_run() {
    let Some(ctx) = &own_ctx() else { return };
    let c = case();
    let (d, d2) = (data(&c, 42), data(&c, 43));
    let mut conv = layer(ctx, &c, &d);
    conv.weight = ctx.trainable("packed.w", &d.w, &d.wshape).unwrap();
    let live0 = 0;
    let mut g = Graph::new();
    let x = g.input("x", &c.x).unwrap();
    let o = conv2d_with(&mut g, "packed", x, &conv, None, None, ConvKernel::Gemm128).unwrap();
    g.mark_output(o);
    assert_eq!(
        g.steps()[0].entry,
        "pack_kmajor",
        "the packing is a step of the graph"
    );
    let plan = g.compile(ctx).unwrap();
    assert_eq!(
        ctx.derived_live(),
        live0,
        "nothing derived from a trainable weight"
    );
    plan.write(ctx, x, &d.x).unwrap();
    for (w, case) in [(&d.w, "before"), (&d2.w, "after the update")] {
        ctx.write_weight(&conv.weight, w).unwrap();
        let got = &plan.run_f32(ctx, &[o]).unwrap()[0];
        let want = reference(&c, &d.x, w, Some(&d.b), None, c.pad);
        assert_close(case, got, &want.data, 1e-3, 0.0);
    }
}
