//! Reference of the selection pipeline (`ops::nms::select`): per-segment top-k, score threshold, candidate cap and
//! sequential greedy NMS, in plain f32 arithmetic as the specs write it (docs/spec/ssh-vgg16.md §6, docs/spec/retinaface-mnv2.md §7).

use std::cmp::Ordering;

pub use crate::ops::nms::{Segment, SelectConfig};

/// Column of the score in a decoded row `[x1, y1, x2, y2, lx0, ly0, …, lx4, ly4, module, score]`.
pub const SCORE: usize = 15;

/// Visiting order of detections: score descending (NaN below every number, −0 equal to +0), then row index ascending.
pub fn order(sa: f32, ia: usize, sb: f32, ib: usize) -> Ordering {
    let by_score = match (sa.is_nan(), sb.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => sb.partial_cmp(&sa).unwrap(),
    };
    by_score.then(ia.cmp(&ib))
}

/// IoU of the boxes in columns 0..4 of two rows.
///
/// `plus_one`: py-faster-rcnn's GPU kernel: widths `x2 − x1 + 1`, intersections `min − max + 1` clamped at 0, no
/// special case for empty boxes (so a zero or negative union gives ±inf or NaN, as in float32 CUDA).
/// Otherwise TF NonMaxSuppressionV3: corners min/max-normalised, areas without +1, IoU = 0 when either area ≤ 0.
pub fn iou(a: &[f32; 16], b: &[f32; 16], plus_one: bool) -> f32 {
    if plus_one {
        let w = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
        let h = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
        let inter = w * h;
        let sa = (a[2] - a[0] + 1.0) * (a[3] - a[1] + 1.0);
        let sb = (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
        inter / (sa + sb - inter)
    } else {
        let corners = |r: &[f32; 16]| {
            [
                r[0].min(r[2]),
                r[1].min(r[3]),
                r[0].max(r[2]),
                r[1].max(r[3]),
            ]
        };
        let (a, b) = (corners(a), corners(b));
        let area_a = (a[2] - a[0]) * (a[3] - a[1]);
        let area_b = (b[2] - b[0]) * (b[3] - b[1]);
        if area_a <= 0.0 || area_b <= 0.0 {
            return 0.0;
        }
        let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
        let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
        let inter = iw * ih;
        inter / (area_a + area_b - inter)
    }
}

/// Sequential greedy NMS: visits rows by [`order`] and keeps a row unless its IoU with an already kept row is
/// `> iou_threshold` (strict). Returns the kept indices into `rows`, in visiting order.
pub fn greedy_nms(rows: &[[f32; 16]], iou_threshold: f32, plus_one: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    idx.sort_by(|&a, &b| order(rows[a][SCORE], a, rows[b][SCORE], b));
    let mut kept: Vec<usize> = Vec::new();
    for i in idx {
        // `> t` rather than `!(<= t)`: a NaN IoU (0 / 0 between two empty +1 boxes) suppresses nothing.
        if !kept
            .iter()
            .any(|&k| iou(&rows[k], &rows[i], plus_one) > iou_threshold)
        {
            kept.push(i);
        }
    }
    kept
}

/// The candidates NMS visits, as row indices in visiting order, and whether more than `cfg.max_candidates`
/// passed the threshold (then only the best `max_candidates` are returned).
pub fn candidates(
    rows: &[[f32; 16]],
    segments: &[Segment],
    cfg: &SelectConfig,
) -> (Vec<usize>, bool) {
    let mut cand = Vec::new();
    for s in segments {
        let mut idx: Vec<usize> = (s.offset..s.offset + s.len).collect();
        idx.sort_by(|&a, &b| order(rows[a][SCORE], a, rows[b][SCORE], b));
        idx.truncate(s.top_k.unwrap_or(s.len));
        cand.extend(
            idx.into_iter()
                .filter(|&i| rows[i][SCORE] > cfg.score_threshold),
        );
    }
    cand.sort_by(|&a, &b| order(rows[a][SCORE], a, rows[b][SCORE], b));
    let overflow = cand.len() > cfg.max_candidates;
    cand.truncate(cfg.max_candidates);
    (cand, overflow)
}

/// One image: per-segment top-k, threshold, cap, greedy NMS; the kept rows, score-descending.
pub fn select(rows: &[[f32; 16]], segments: &[Segment], cfg: &SelectConfig) -> Vec<[f32; 16]> {
    let (cand, _) = candidates(rows, segments, cfg);
    let cand_rows: Vec<[f32; 16]> = cand.iter().map(|&i| rows[i]).collect();
    // Candidates are already in visiting order, so greedy_nms's (score, position) order is the same order.
    greedy_nms(&cand_rows, cfg.iou_threshold, cfg.plus_one)
        .into_iter()
        .map(|k| cand_rows[k])
        .collect()
}
