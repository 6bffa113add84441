//! Selection and NMS (`ops::nms::select`) against `reference::nms`. Every GPU case must be identical to the
//! reference (tolerance: none): same count, same overflow flag, the same rows bit for bit in the same order, and
//! zeros after them. Hand-computed cases check the reference itself.

use rand::Rng;
use sshface::gpu::plan::{bytes_to_f32, bytes_to_u32};
use sshface::gpu::Graph;
use sshface::ops::nms::{select, Segment, SelectConfig};
use sshface::reference::nms as reference;

use crate::common::*;

type Row = [f32; 16];
/// (name, images, segments, config)
type Case = (&'static str, Vec<Vec<Row>>, Vec<Segment>, SelectConfig);

pub fn row(b: [f32; 4], score: f32) -> Row {
    let mut r = [0.0; 16];
    r[..4].copy_from_slice(&b);
    for (k, v) in r[4..14].iter_mut().enumerate() {
        *v = b[k % 2] + k as f32;
    }
    r[14] = 1.0;
    r[15] = score;
    r
}

fn seg(offset: usize, len: usize, top_k: Option<usize>) -> Segment {
    Segment { offset, len, top_k }
}

fn cfg(score: f32, iou: f32, plus_one: bool, cap: usize) -> SelectConfig {
    SelectConfig {
        score_threshold: score,
        iou_threshold: iou,
        plus_one,
        max_candidates: cap,
    }
}

/// Random boxes crowded into `extent` pixels, so that many overlap. `degenerate` of them have zero or negative
/// width or height; scores are rounded to `levels` steps (0: continuous) to create ties.
fn random_rows(seed: u64, n: usize, extent: f32, degenerate: f64, levels: u32) -> Vec<Row> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let (cx, cy) = (r.random_range(0.0..extent), r.random_range(0.0..extent));
            let (mut w, h) = (r.random_range(4.0..48.0f32), r.random_range(4.0..48.0f32));
            if r.random_bool(degenerate) {
                w = [0.0, -1.0, -7.5][r.random_range(0..3)];
            }
            let mut s: f32 = r.random_range(0.0..1.0);
            if levels > 0 {
                s = (s * levels as f32).floor() / levels as f32;
            }
            row([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0], s)
        })
        .collect()
}

/// Integer boxes on a small grid: IoUs are small rationals, so many equal the threshold exactly in float32.
fn grid_rows(seed: u64, n: usize) -> Vec<Row> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let x = r.random_range(0..24) as f32;
            let y = r.random_range(0..24) as f32;
            let w = r.random_range(1..9) as f32;
            let h = r.random_range(1..9) as f32;
            row([x, y, x + w, y + h], r.random_range(1..9) as f32 / 8.0)
        })
        .collect()
}

struct GpuResult {
    rows: Vec<Vec<Row>>,
    counts: Vec<[u32; 2]>,
    cap: usize,
}

fn run_select(images: &[Vec<Row>], segments: &[Segment], c: &SelectConfig) -> Option<GpuResult> {
    let ctx = gpu()?;
    let (n, r) = (images.len(), images[0].len());
    let mut g = Graph::new();
    let input = g.input("dets", &[n, r, 16]).unwrap();
    let sel = select(&mut g, "select", input, segments, c).unwrap();
    g.mark_output(sel.rows);
    g.mark_output(sel.counts);
    let plan = g.compile(ctx).unwrap();
    let flat: Vec<f32> = images.iter().flatten().flatten().copied().collect();
    plan.write(ctx, input, &flat).unwrap();
    let out = plan.run(ctx, &[sel.rows, sel.counts]).unwrap();
    let vals = bytes_to_f32(&out[0]);
    let counts = bytes_to_u32(&out[1]);
    let cap = c.max_candidates;
    Some(GpuResult {
        rows: (0..n)
            .map(|i| {
                (0..cap)
                    .map(|k| vals[(i * cap + k) * 16..][..16].try_into().unwrap())
                    .collect()
            })
            .collect(),
        counts: (0..n).map(|i| [counts[2 * i], counts[2 * i + 1]]).collect(),
        cap,
    })
}

/// Ok when image `i` of `got` equals `want` exactly (bits of every value, order, count, overflow flag).
fn compare(got: &GpuResult, i: usize, want: &[Row], overflow: bool) -> Result<(), String> {
    let [count, flag] = got.counts[i];
    if count as usize != want.len() || (flag == 1) != overflow {
        return Err(format!(
            "image {i}: got count {count} overflow {flag}, want {} overflow {overflow}",
            want.len()
        ));
    }
    for (k, (g, w)) in got.rows[i].iter().zip(want).enumerate() {
        if g.map(f32::to_bits) != w.map(f32::to_bits) {
            return Err(format!("image {i}: kept row {k}: got {g:?}, want {w:?}"));
        }
    }
    if let Some(k) = (want.len()..got.cap).find(|&k| got.rows[i][k] != [0.0; 16]) {
        return Err(format!("image {i}: row {k} past the count is not zero"));
    }
    Ok(())
}

fn check(case: &str, images: &[Vec<Row>], segments: &[Segment], c: &SelectConfig) {
    let Some(got) = run_select(images, segments, c) else {
        return;
    };
    for (i, img) in images.iter().enumerate() {
        let want = reference::select(img, segments, c);
        let (_, overflow) = reference::candidates(img, segments, c);
        if let Err(e) = compare(&got, i, &want, overflow) {
            panic!("{case}: {e}");
        }
    }
}

#[test]
fn select_matches_reference() {
    let crowd = random_rows(1, 5000, 400.0, 0.0, 0);
    let three = [
        seg(0, 2000, Some(1000)),
        seg(2000, 1700, Some(1000)),
        seg(3700, 1300, None),
    ];
    let ties = random_rows(2, 3001, 150.0, 0.0, 16);
    let degenerate = random_rows(3, 777, 120.0, 0.3, 0);
    let grid = grid_rows(4, 600);
    // Tolerance for every case: none (identical rows, order, count and overflow flag; see the module doc).
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("R=5000, 3 segments, +1 (ssh-vgg16)", vec![crowd.clone()], three.to_vec(), cfg(0.05, 0.3, true, 4096)),
        ("R=5000, 3 segments, TF (retinaface)", vec![crowd.clone()], three.to_vec(), cfg(0.5, 0.4, false, 4096)),
        ("tied scores decide by row index, +1", vec![ties.clone()],
            vec![seg(0, 1500, Some(700)), seg(1500, 1501, Some(333))], cfg(0.1, 0.3, true, 2048)),
        ("tied scores, TF; scores == threshold 0.5 are out", vec![ties], vec![seg(0, 3001, None)], cfg(0.5, 0.2, false, 4000)),
        ("zero and negative widths, +1", vec![degenerate.clone()], vec![seg(0, 777, None)], cfg(0.05, 0.3, true, 1000)),
        ("zero and negative widths, TF", vec![degenerate],
            vec![seg(0, 400, Some(300)), seg(400, 377, None)], cfg(0.05, 0.4, false, 1000)),
        ("integer grid, IoU often == 0.5, +1", vec![grid.clone()], vec![seg(0, 600, None)], cfg(0.0, 0.5, true, 600)),
        ("integer grid, IoU often == 0.25, TF", vec![grid.clone()], vec![seg(0, 600, None)], cfg(0.0, 0.25, false, 600)),
        ("integer grid, threshold fl(1/3), TF", vec![grid], vec![seg(0, 600, None)], cfg(0.0, 1.0 / 3.0, false, 600)),
        ("all rows below the threshold", vec![random_rows(5, 300, 100.0, 0.0, 0)], vec![seg(0, 300, None)], cfg(1.0, 0.3, true, 64)),
        ("candidates > max_candidates (overflow)", vec![crowd[..2000].to_vec()], vec![seg(0, 2000, Some(1500))], cfg(0.05, 0.3, true, 100)),
        ("odd sizes: R=17, cap 9, segments out of order", vec![random_rows(6, 17, 30.0, 0.1, 4)],
            vec![seg(9, 8, Some(3)), seg(0, 7, None)], cfg(0.1, 0.3, false, 9)),
        ("batch 2 with different data", vec![random_rows(7, 1234, 200.0, 0.05, 0), random_rows(8, 1234, 200.0, 0.05, 8)],
            vec![seg(0, 600, Some(250)), seg(700, 534, Some(400))], cfg(0.2, 0.35, true, 700)),
    ];
    for (name, images, segments, c) in &cases {
        check(name, images, segments, c);
    }
}

#[test]
fn one_candidate_and_one_row() {
    let mut rows = random_rows(9, 40, 50.0, 0.0, 0);
    for (k, r) in rows.iter_mut().enumerate() {
        r[15] = if k == 23 { 0.9 } else { 0.01 };
    }
    check(
        "exactly one candidate",
        &[rows],
        &[seg(0, 40, None)],
        &cfg(0.5, 0.3, true, 32),
    );
    let single = vec![row([1.0, 2.0, 3.0, 4.0], 0.7)];
    check(
        "R = 1",
        &[single],
        &[seg(0, 1, None)],
        &cfg(0.5, 0.3, false, 1),
    );
}

#[test]
fn iou_equal_to_threshold_is_not_suppressed() {
    // +1: areas 100 and 30, the second inside the first: IoU = 30 / 100 = fl(0.3), exactly the threshold.
    let plus = vec![
        row([0.0, 0.0, 9.0, 9.0], 0.9),
        row([0.0, 0.0, 9.0, 2.0], 0.8),
    ];
    // TF: areas 100 and 40 nested: IoU = fl(0.4).
    let tf = vec![
        row([0.0, 0.0, 10.0, 10.0], 0.9),
        row([0.0, 0.0, 10.0, 4.0], 0.8),
    ];
    let below = |t: f32| f32::from_bits(t.to_bits() - 1);
    for (name, rows, t, plus_one, kept) in [
        ("+1, IoU == 0.3", &plus, 0.3f32, true, 2),
        ("+1, IoU one ulp above t", &plus, below(0.3), true, 1),
        ("TF, IoU == 0.4", &tf, 0.4, false, 2),
        ("TF, IoU one ulp above t", &tf, below(0.4), false, 1),
    ] {
        assert_eq!(
            reference::greedy_nms(rows, t, plus_one).len(),
            kept,
            "{name}"
        );
        check(
            name,
            std::slice::from_ref(rows),
            &[seg(0, 2, None)],
            &cfg(0.0, t, plus_one, 2),
        );
    }
}

#[test]
fn equal_scores_keep_the_lower_row_index() {
    // Rows 1 and 3 overlap heavily and tie at 0.8; row 1 must survive and suppress row 3, whatever the sort does.
    let rows = vec![
        row([100.0, 100.0, 120.0, 120.0], 0.5),
        row([0.0, 0.0, 20.0, 20.0], 0.8),
        row([50.0, 50.0, 60.0, 60.0], 0.8),
        row([1.0, 1.0, 21.0, 21.0], 0.8),
    ];
    let want = reference::select(&rows, &[seg(0, 4, None)], &cfg(0.0, 0.3, true, 8));
    assert_eq!(want, vec![rows[1], rows[2], rows[0]]);
    check(
        "tie, NMS",
        std::slice::from_ref(&rows),
        &[seg(0, 4, None)],
        &cfg(0.0, 0.3, true, 8),
    );
    // top_k 1 of a segment with a tie keeps the lower index.
    let (cand, _) = reference::candidates(&rows, &[seg(1, 3, Some(1))], &cfg(0.0, 0.3, true, 8));
    assert_eq!(cand, vec![1]);
    check(
        "tie, top_k",
        &[rows],
        &[seg(1, 3, Some(1))],
        &cfg(0.0, 0.3, true, 8),
    );
}

#[test]
fn nan_scores_sort_last_and_never_pass() {
    let mut rows = random_rows(10, 200, 80.0, 0.0, 0);
    for k in (0..200).step_by(7) {
        rows[k][15] = f32::NAN;
    }
    rows[3][15] = -0.0;
    rows[4][15] = 0.0;
    rows[5][15] = f32::INFINITY;
    // top_k 150 of 200 with 29 NaN: the NaN rows must be the ones cut.
    check(
        "NaN scores, thr -1",
        &[rows.clone()],
        &[seg(0, 200, Some(150))],
        &cfg(-1.0, 0.3, false, 256),
    );
    check(
        "NaN scores, thr -0",
        &[rows],
        &[seg(0, 200, None)],
        &cfg(-0.0, 0.3, true, 256),
    );
}

#[test]
fn comparison_catches_a_wrong_reference() {
    let rows = vec![
        row([0.0, 0.0, 20.0, 20.0], 0.8),
        row([1.0, 1.0, 21.0, 21.0], 0.8),
    ];
    let segs = [seg(0, 2, None)];
    let c = cfg(0.0, 0.3, true, 4);
    let Some(got) = run_select(std::slice::from_ref(&rows), &segs, &c) else {
        return;
    };
    compare(&got, 0, &reference::select(&rows, &segs, &c), false).unwrap();
    // A reference that broke ties by the higher index would keep the other box.
    let swapped = vec![rows[1], rows[0]];
    assert!(compare(&got, 0, &reference::select(&swapped, &segs, &c), false).is_err());
    // So would one without the +1 convention on random data, or a wrong overflow flag.
    let crowd = random_rows(11, 500, 100.0, 0.0, 0);
    let segs = [seg(0, 500, None)];
    let c = cfg(0.0, 0.3, true, 500);
    let got = run_select(std::slice::from_ref(&crowd), &segs, &c).unwrap();
    compare(&got, 0, &reference::select(&crowd, &segs, &c), false).unwrap();
    let tf = cfg(0.0, 0.3, false, 500);
    assert!(compare(&got, 0, &reference::select(&crowd, &segs, &tf), false).is_err());
    assert!(compare(&got, 0, &reference::select(&crowd, &segs, &c), true).is_err());
}

#[test]
fn bad_input_is_an_error() {
    let mut g = Graph::new();
    let rows = g.input("dets", &[2, 100, 16]).unwrap();
    let c = cfg(0.5, 0.4, false, 64);
    let e = select(
        &mut g,
        "post.nms",
        rows,
        &[seg(0, 60, None), seg(60, 41, Some(10))],
        &c,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("post.nms")
            && e.contains("segment 1")
            && e.contains("offset 60")
            && e.contains("41")
            && e.contains("100 rows"),
        "{e}"
    );
    let e = select(
        &mut g,
        "post.nms",
        rows,
        &[seg(0, 60, None), seg(50, 20, None)],
        &c,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("post.nms") && e.contains("overlaps segment 0"),
        "{e}"
    );
    let e = select(
        &mut g,
        "post.nms",
        rows,
        &[seg(0, 100, None)],
        &cfg(0.5, 0.4, false, 0),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("post.nms") && e.contains("max_candidates") && e.contains("found 0"),
        "{e}"
    );
    let e = select(
        &mut g,
        "post.nms",
        rows,
        &[seg(0, 100, None)],
        &cfg(0.5, f32::NAN, false, 8),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("post.nms") && e.contains("iou_threshold"), "{e}");
    for shape in [&[2, 100, 15][..], &[200, 16], &[1, 2, 100, 16]] {
        let bad = g.input("dets15", shape).unwrap();
        let e = select(&mut g, "post.nms", bad, &[seg(0, 1, None)], &c)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("post.nms")
                && e.contains("dets15")
                && e.contains(&format!("{shape:?}"))
                && e.contains("[N, R, 16]"),
            "{e}"
        );
    }
}

#[test]
fn nan_iou_suppresses_nothing() {
    // +1 boxes with x2 = x1 − 1 have area 0: two of them give IoU 0 / 0 = NaN, which is not > t.
    let rows = vec![
        row([5.0, 0.0, 4.0, 9.0], 0.9),
        row([5.0, 0.0, 4.0, 9.0], 0.8),
    ];
    assert!(reference::iou(&rows[0], &rows[1], true).is_nan());
    assert_eq!(reference::greedy_nms(&rows, 0.3, true), vec![0, 1]);
    check(
        "NaN IoU",
        &[rows],
        &[seg(0, 2, None)],
        &cfg(0.0, 0.3, true, 2),
    );
}
