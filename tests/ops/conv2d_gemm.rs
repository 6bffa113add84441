//! conv2d_gemm.wgsl (`ConvKernel::Gemm128`: 256 threads, 128×128 tiles and the narrower ones of its
//! table) vs the f64 reference, on shapes that stress its tiling: channels just past a tile (129, 257),
//! pixel counts that are not multiples of 4 or of a tile, batch 3, K not a multiple of the slice,
//! residuals and channel-offset outputs. Every (tile, entry) pair of the tier runs at least once. The
//! fp32 table of conv2d.rs also runs every case on `Gemm128`. Tolerance as there: atol = 1e-4·sqrt(K).

use super::conv2d::{data, k_of, layer, reference, Case, BASE};
use crate::common::*;
use sshface::gpu::{Graph, StepDesc, TensorId};
use sshface::ops::conv2d::{conv2d_with, ConvKernel};
use sshface::ops::conv2d_gemm::{pays, TILES};
use sshface::ops::Activation;
use sshface::reference::CpuTensor;

fn atol(c: &Case) -> f32 {
    1e-4 * (k_of(c) as f32).sqrt()
}

/// The cases, grouped by the tile they get (see `conv2d_gemm::tile`); "v4" marks those on the vec4
/// entry (1x1, stride 1, no padding, Ho·Wo a multiple of 4).
#[rustfmt::skip]
pub(crate) fn cases() -> Vec<Case> {
    let p0 = [0; 4];
    let (s2, tf) = ([2, 2], [0, 1, 0, 1]);
    vec![
        // 128x128 (at least 128 workgroups): 3 channel tiles, the last 1 channel wide; 5775 pixels.
        Case { name: "wide k3 C8->257 75x77", x: [1, 8, 75, 77], c_out: 257, ..BASE },
        Case { name: "wide v4 C20->129 96x96 residual relu", x: [1, 20, 96, 96], c_out: 129, k: [1, 1], pad: p0, res: true, act: Activation::Relu, ..BASE },
        // 64x128: wide layers on small maps.
        Case { name: "small k3 s2 0101 batch 3 C12->129 17x23", x: [3, 12, 17, 23], c_out: 129, stride: s2, pad: tf, ..BASE },
        Case { name: "small v4 batch 3 C36->200 10x10 leaky", x: [3, 36, 10, 10], c_out: 200, k: [1, 1], pad: p0, act: Activation::Leaky(0.1), ..BASE },
        Case { name: "small 1x1 5x7 (pixels not 4n) C36->129", x: [1, 36, 5, 7], c_out: 129, k: [1, 1], pad: p0, ..BASE },
        // 64x256
        Case { name: "mid dilation 2 C5->33 31x30 (K 45)", x: [1, 5, 31, 30], c_out: 33, dil: [2, 2], pad: [2, 2, 2, 2], ..BASE },
        Case { name: "mid v4 batch 3 C64->64 12x12 relu6 residual", x: [3, 64, 12, 12], c_out: 64, k: [1, 1], pad: p0, res: true, act: Activation::Relu6, ..BASE },
        // 32x256
        Case { name: "narrow 1x1 K 17 (not 4n) C17->20 7x9", x: [1, 17, 7, 9], c_out: 20, k: [1, 1], pad: p0, ..BASE },
        Case { name: "narrow v4 K 17 (packed with zero depths) C17->20 8x8", x: [1, 17, 8, 8], c_out: 20, k: [1, 1], pad: p0, ..BASE },
        Case { name: "narrow v4 batch 2 C16->32 9x12", x: [2, 16, 9, 12], c_out: 32, k: [1, 1], pad: p0, ..BASE },
        // 16x256: detection heads.
        Case { name: "head v4 C128->4 15x20 (SSH cls)", x: [1, 128, 15, 20], c_out: 4, k: [1, 1], pad: p0, ..BASE },
        Case { name: "head 1x1 groups 2 C64->10 13x11", x: [1, 64, 13, 11], c_out: 10, k: [1, 1], pad: p0, groups: 2, ..BASE },
        Case { name: "head k5 asym pad batch 3 C3->16 (K 75)", x: [3, 3, 14, 9], c_out: 16, k: [5, 5], pad: [1, 3, 2, 2], ..BASE },
    ]
}

fn entry_and_tile(s: &StepDesc) -> (&'static str, Vec<f64>) {
    let get = |n: &str| s.constants.iter().find(|(k, _)| *k == n).map(|c| c.1);
    let tile = ["TM", "RM", "RN"].iter().map(|n| get(n).unwrap()).collect();
    (s.entry, tile)
}

#[test]
fn conv2d_gemm_cases() {
    let Some(ctx) = gpu() else { return };
    let mut seen = Vec::new();
    for (i, c) in cases().iter().enumerate() {
        let d = data(c, 3000 + 100 * i as u64);
        let res = CpuTensor::new(&d.oshape, d.r.clone());
        let (b, r) = (c.bias.then_some(&d.b[..]), c.res.then_some(&res));
        let want = reference(c, &d.x, &d.w, b, r, c.pad);
        let conv = layer(ctx, c, &d);
        // Auto in a big-tile graph takes this tier too, except for shallow layers.
        let mut g = Graph::new().with_big_tiles(true);
        let tx = g.input("x", &c.x).unwrap();
        let tr = g.input("res", &d.oshape).unwrap();
        let ks = [ConvKernel::Gemm128, ConvKernel::Auto];
        let outs: Vec<TensorId> = ks
            .iter()
            .map(|&k| {
                let label = format!("{} {k:?}", c.name);
                let o = conv2d_with(&mut g, &label, tx, &conv, c.res.then_some(tr), None, k);
                let o = o.unwrap();
                g.mark_output(o);
                o
            })
            .collect();
        let forced = entry_and_tile(&g.steps()[0]);
        let auto_here = g.steps()[1].shader.name == "conv2d_gemm";
        assert_eq!(auto_here, pays(c.x[1] / c.groups, k_of(c)), "{}", c.name);
        seen.push(forced.clone());
        let got = run_graph(ctx, g, &[(tx, &d.x), (tr, &d.r)], &outs);
        for (k, got) in ks.iter().zip(got) {
            let case = format!("{} [{k:?} {forced:?}] K={}", c.name, k_of(c));
            assert_close(&case, &got, &want.data, atol(c), 0.0);
        }
    }
    for t in TILES {
        for entry in ["conv2d_gemm", "conv2d_gemm_v4"] {
            let tile = vec![t.tm as f64, t.rm as f64, t.rn as f64];
            assert!(
                seen.contains(&(entry, tile)),
                "no case runs {entry} with {t:?}; seen {seen:?}"
            );
        }
    }
}

/// Two convs fill channels 0..129 and 140..269 of one tensor, one with a residual (read at the
/// output's own layout, written at the offset); channels 129..140 stay untouched.
#[test]
fn conv2d_gemm_into_channel_offset() {
    let Some(ctx) = gpu() else { return };
    let c = Case {
        name: "into",
        x: [2, 24, 20, 20],
        c_out: 129,
        k: [1, 1],
        pad: [0; 4],
        act: Activation::Relu,
        ..BASE
    };
    let k3 = Case {
        k: [3, 3],
        pad: [1; 4],
        ..c
    };
    let (d, d3) = (data(&c, 11), data(&k3, 12));
    let mut g = Graph::new();
    let tx = g.input("x", &c.x).unwrap();
    let tr = g.input("res", &d.oshape).unwrap();
    let cat = g.tensor("cat", &[2, 269, 20, 20]).unwrap();
    let gemm = ConvKernel::Gemm128;
    let (conv, conv3) = (layer(ctx, &c, &d), layer(ctx, &k3, &d3));
    conv2d_with(&mut g, "lo v4", tx, &conv, Some(tr), Some((cat, 0)), gemm).unwrap();
    conv2d_with(&mut g, "hi k3", tx, &conv3, None, Some((cat, 140)), gemm).unwrap();
    assert_eq!(g.steps()[0].entry, "conv2d_gemm_v4");
    g.mark_output(cat);
    let got = &run_graph(ctx, g, &[(tx, &d.x), (tr, &d.r)], &[cat])[0];
    let res = CpuTensor::new(&d.oshape, d.r.clone());
    let lo = reference(&c, &d.x, &d.w, Some(&d.b), Some(&res), c.pad);
    let hi = reference(&k3, &d.x, &d3.w, Some(&d3.b), None, k3.pad);
    let hw = 400;
    for n in 0..2 {
        let want = |t: &CpuTensor| t.data[n * 129 * hw..(n + 1) * 129 * hw].to_vec();
        for (c0, t, case) in [(0, &lo, &c), (140, &hi, &k3)] {
            let at = (n * 269 + c0) * hw;
            let name = format!("into {c0} n{n}");
            assert_close(&name, &got[at..at + 129 * hw], &want(t), atol(case), 0.0);
        }
        let gap = &got[(n * 269 + 129) * hw..(n * 269 + 140) * hw];
        assert!(
            gap.iter().all(|&v| v == 0.0),
            "a conv wrote outside its channels"
        );
    }
}

/// `Auto` uses the tier only in graphs built with big tiles, and never for depthwise convs.
#[test]
fn conv2d_gemm_only_where_enabled() {
    let Some(ctx) = gpu() else { return };
    let wide = Case {
        name: "wide",
        x: [1, 64, 9, 9],
        c_out: 64,
        ..BASE
    };
    let dw = Case {
        name: "dw",
        c_out: 64,
        groups: 64,
        ..wide
    };
    for (c, big, want) in [(wide, false, false), (wide, true, true), (dw, true, false)] {
        let d = data(&c, 1);
        let mut g = Graph::new().with_big_tiles(big);
        let tx = g.input("x", &c.x).unwrap();
        conv2d_with(
            &mut g,
            c.name,
            tx,
            &layer(ctx, &c, &d),
            None,
            None,
            ConvKernel::Auto,
        )
        .unwrap();
        let used = g.steps()[0].shader.name == "conv2d_gemm";
        assert_eq!(used, want, "{} big_tiles={big}", c.name);
    }
}
