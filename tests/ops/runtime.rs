//! The runtime itself: bad input is an error, the arena shares buffers, fill works, reads are checked.

use crate::common::*;
use sshface::gpu::Graph;
use sshface::ops::{add::add, fill::fill, Activation};
use sshface::Error;

#[test]
fn zero_size_tensor_is_an_error() {
    let mut g = Graph::new();
    let e = g.input("image", &[1, 3, 0, 5]).unwrap_err();
    assert!(matches!(e, Error::Empty { .. }));
    assert!(
        e.to_string().contains("image") && e.to_string().contains("[1, 3, 0, 5]"),
        "{e}"
    );
}

#[test]
fn tensor_over_binding_limit_is_an_error() {
    let Some(ctx) = gpu() else { return };
    let limit = ctx.max_binding();
    let elems = (limit / 4 + 1) as usize;
    let mut g = Graph::new();
    let a = g.input("conv1_2", &[1, 1, 1, elems]).unwrap();
    let b = g.input("b", &[1, 1, 1, elems]).unwrap();
    let _ = add(&mut g, "x", a, b, Activation::None).unwrap();
    let e = g.compile(ctx).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::TooLarge { .. }), "{msg}");
    assert!(
        msg.contains("conv1_2") && msg.contains(&limit.to_string()),
        "{msg}"
    );
}

#[test]
fn write_with_wrong_length_is_an_error() {
    let Some(ctx) = gpu() else { return };
    let mut g = Graph::new();
    let a = g.input("a", &[1, 2, 3, 4]).unwrap();
    let b = g.input("b", &[1, 2, 3, 4]).unwrap();
    let o = add(&mut g, "o", a, b, Activation::None).unwrap();
    g.mark_output(o);
    let plan = g.compile(ctx).unwrap();
    let e = plan.write(ctx, a, &[0.0f32; 5]).unwrap_err().to_string();
    assert!(e.contains("20 bytes") && e.contains("96 bytes"), "{e}");
}

#[test]
fn arena_reuses_buffers_and_keeps_values_right() {
    let Some(ctx) = gpu() else { return };
    // A chain x -> t1 -> t2 -> ... ; transient tensors must share buffers.
    let shape = [2, 3, 17, 9];
    let n: usize = shape.iter().product();
    let x = rand_vec(7, n, -1.0, 1.0);
    let mut g = Graph::new();
    let tx = g.input("x", &shape).unwrap();
    let mut cur = tx;
    for i in 0..8 {
        cur = add(&mut g, &format!("step{i}"), cur, tx, Activation::None).unwrap();
    }
    g.mark_output(cur);
    let plan = g.compile(ctx).unwrap();
    let per = (n as u64 * 4).next_multiple_of(256);
    assert!(
        plan.arena_bytes() <= 4 * per,
        "arena {} bytes for 9 tensors of {per}",
        plan.arena_bytes()
    );
    plan.write(ctx, tx, &x).unwrap();
    let got = sshface::gpu::plan::bytes_to_f32(&plan.run(ctx, &[cur]).unwrap()[0]);
    let want: Vec<f32> = x
        .iter()
        .map(|v| {
            let mut c = *v;
            for _ in 0..8 {
                c += v;
            }
            c
        })
        .collect();
    assert_close("chain of 8 adds", &got, &want, 1e-5, 1e-6);
    // A second run with new data reuses the same plan.
    let x2 = rand_vec(8, n, -1.0, 1.0);
    plan.write(ctx, tx, &x2).unwrap();
    let got2 = sshface::gpu::plan::bytes_to_f32(&plan.run(ctx, &[cur]).unwrap()[0]);
    assert_close(
        "second run",
        &got2,
        &x2.iter().map(|v| v * 9.0).collect::<Vec<_>>(),
        1e-5,
        1e-6,
    );
}

#[test]
fn fill_writes_every_element() {
    let Some(ctx) = gpu() else { return };
    let mut g = Graph::new();
    let t = g.tensor("counters", &[1, 1, 3, 1001]).unwrap();
    fill(&mut g, "clear", t, 0xDEAD_BEEF).unwrap();
    g.mark_output(t);
    let got = run_graph_u32(ctx, g, &[], &[t]);
    assert!(got[0].iter().all(|&v| v == 0xDEAD_BEEF));
}

/// fill writes 32-bit words: an f16 tensor is refused, naming it, rather than overrun.
#[test]
fn fill_refuses_f16_tensors() {
    let mut g = Graph::new();
    let t = g
        .tensor_as("half", &[3, 5], sshface::gpu::DType::F16)
        .unwrap();
    let e = fill(&mut g, "clear", t, 0).unwrap_err().to_string();
    assert!(e.contains("'half' is F16") && e.contains("clear"), "{e}");
}

#[test]
fn reading_a_transient_tensor_is_an_error() {
    let Some(ctx) = gpu() else { return };
    let mut g = Graph::new();
    let a = g.input("a", &[4]).unwrap();
    let o = add(&mut g, "hidden", a, a, Activation::None).unwrap();
    let plan = g.compile(ctx).unwrap();
    let e = plan.run(ctx, &[o]).unwrap_err().to_string();
    assert!(e.contains("hidden"), "{e}");
}
