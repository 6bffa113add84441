//! Detection selection on the GPU: per-segment top-k, score threshold, candidate cap and greedy NMS that returns
//! exactly what the sequential algorithm (`reference::nms`) returns. `rows [N, R, 16]` →
//! `Selection { rows [N, max_candidates, 16], counts [N, 2] }`.
//!
//! Steps: `select_keys` (records per row) → `sort` by (segment, score desc, row) → `select_topk` (rank < top_k and
//! score > threshold → group 0) → `sort` by (group, score desc, row): the candidates come first in visiting order →
//! `nms_mask` (pairwise suppression bits) → `nms` (the sequential sweep, one workgroup per image).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{Graph, StepDesc, TensorId};
use crate::ops::fill::fill;
use crate::ops::gather_rows::gather_rows;
use crate::ops::nms_mask::nms_mask;
use crate::ops::select_keys::{score_key, select_keys_chunk, MAX_SEGMENTS};
use crate::ops::select_topk::select_topk;
use crate::ops::sort::sort;
use crate::ops::{nms_mask as mask_op, select_keys as keys_op, Shader};

/// A contiguous range of rows (one detection module, or one (pyramid level, module)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub offset: usize,
    pub len: usize,
    /// Keep only this many best rows of the segment before the threshold; `None` keeps all.
    pub top_k: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelectConfig {
    /// Keep rows with score > t (strict).
    pub score_threshold: f32,
    /// Suppress when IoU > t (strict).
    pub iou_threshold: f32,
    /// py-faster-rcnn areas (x2 − x1 + 1)(y2 − y1 + 1) and +1 intersections (ssh-vgg16), else TF (no +1, IoU = 0 when
    /// an area ≤ 0).
    pub plus_one: bool,
    /// Capacity after the threshold; more candidates than this keep the best max_candidates (by score, then index)
    /// and set the overflow flag. At most [`MAX_CANDIDATES`].
    pub max_candidates: usize,
}

/// Largest `max_candidates`: the sweep keeps one removal bit per candidate in 4 KiB of workgroup memory.
pub const MAX_CANDIDATES: usize = 32 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    /// `[N, max_candidates, 16]` kept rows, score-descending; rows past the count are zero.
    pub rows: TensorId,
    /// `[N, 2]` u32: kept count, overflow flag (1 when more than max_candidates passed the threshold).
    pub counts: TensorId,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub rows: u32,
    pub len: u32,
    pub cap: u32,
    pub words: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

pub static SHADER: Shader = crate::shader!("nms", Params);

/// Per image: within each segment keep its top_k rows by (score desc, row index asc) (all rows when None); then rows
/// with score > score_threshold; then greedy NMS visiting candidates by (score desc, row index asc). Kept rows are
/// written score-descending; rows past the count are unspecified (currently zero). NaN scores sort below every
/// number and never pass the threshold. Rows outside every segment are ignored.
pub fn select(
    g: &mut Graph,
    label: &str,
    rows: TensorId,
    segments: &[Segment],
    cfg: &SelectConfig,
) -> Result<Selection> {
    select_chunks(g, label, &[(0, rows)], segments, cfg)
}

/// [`select`] over rows held in chunks, each `(first row, [N, rows, 16])`, consecutive from row 0 (the rows of an
/// image too large for one binding). The candidates are gathered into one `[N, max_candidates, 16]` tensor that NMS
/// reads; the result is the same as over one rows tensor.
pub fn select_chunks(
    g: &mut Graph,
    label: &str,
    chunks: &[(usize, TensorId)],
    segments: &[Segment],
    cfg: &SelectConfig,
) -> Result<Selection> {
    let mut r = 0;
    let mut n = 0;
    for &(first, t) in chunks {
        match g.shape(t) {
            &[nn, rr, 16] if first == r && (n == 0 || nn == n) => {
                r += rr;
                n = nn;
            }
            s => {
                return Err(Error::shape(
                    label,
                    format!(
                    "rows '{}' must be [N, R, 16] starting at row {r}, found {s:?} at row {first}",
                    g.info(t).name
                ),
                ))
            }
        }
    }
    if chunks.is_empty() {
        return Err(Error::shape(label, "no rows to select from"));
    }
    check_config(label, r, segments, cfg)?;
    let len = r.next_power_of_two().max(2);
    let cap = cfg.max_candidates;
    let words = cap.div_ceil(32);
    let mut kp = keys_op::Params {
        rows: r as u32,
        len: len as u32,
        segments: segments.len() as u32,
        thr_key: score_key(cfg.score_threshold),
        seg: [[0; 4]; 32],
    };
    let mut first = 0;
    for (k, s) in segments.iter().enumerate() {
        let top_k = s.top_k.unwrap_or(s.len).min(s.len);
        kp.seg[k] = [s.offset as u32, s.len as u32, first as u32, top_k as u32];
        first += s.len;
    }
    let recs = g.tensor(&format!("{label}.recs"), &[n, len, 2])?;
    let count = g.tensor(&format!("{label}.candidates"), &[n])?;
    let mask = g.tensor(&format!("{label}.mask"), &[n, cap, words])?;
    let out = g.tensor(&format!("{label}.rows"), &[n, cap, 16])?;
    let counts = g.tensor(&format!("{label}.counts"), &[n, 2])?;
    for (k, &(first, t)) in chunks.iter().enumerate() {
        let l = match chunks.len() {
            1 => format!("{label}.keys"),
            c => format!("{label}.keys[chunk {}/{c}]", k + 1),
        };
        select_keys_chunk(g, &l, t, first, recs, &kp)?;
    }
    sort(g, &format!("{label}.sort_segments"), recs)?;
    fill(g, &format!("{label}.clear"), count, 0)?;
    select_topk(g, &format!("{label}.topk"), recs, count, &kp)?;
    sort(g, &format!("{label}.sort_candidates"), recs)?;
    // NMS reads the candidates' rows: in place from one rows tensor, else gathered from the chunks.
    let (rows, r) = match chunks {
        [(_, t)] => (*t, r),
        _ => {
            let cand = g.tensor(&format!("{label}.candidate_rows"), &[n, cap, 16])?;
            for (k, &(first, t)) in chunks.iter().enumerate() {
                let l = format!("{label}.gather[chunk {}/{}]", k + 1, chunks.len());
                gather_rows(g, &l, t, first, count, recs, cand, k + 1 == chunks.len())?;
            }
            (cand, cap)
        }
    };
    let mp = mask_op::Params {
        rows: r as u32,
        len: len as u32,
        cap: cap as u32,
        words: words as u32,
        iou_threshold: cfg.iou_threshold,
        zero: 0,
        _pad: [0; 2],
    };
    nms_mask(
        g,
        &format!("{label}.mask"),
        rows,
        recs,
        count,
        mask,
        &mp,
        cfg.plus_one,
    )?;
    g.push(StepDesc {
        label: format!("{label}.nms"),
        shader: &SHADER,
        entry: "nms",
        constants: vec![("WG", 256.0)],
        params: bytemuck::bytes_of(&Params {
            rows: r as u32,
            len: len as u32,
            cap: cap as u32,
            words: words as u32,
        })
        .to_vec(),
        bindings: vec![
            rows.into(),
            recs.into(),
            count.into(),
            mask.into(),
            out.into(),
            counts.into(),
        ],
        workgroups: [1, 1, n as u32],
        flops: 0,
    });
    Ok(Selection { rows: out, counts })
}

fn check_config(label: &str, r: usize, segments: &[Segment], cfg: &SelectConfig) -> Result<()> {
    if cfg.max_candidates == 0 || cfg.max_candidates > MAX_CANDIDATES {
        return Err(Error::shape(
            label,
            format!(
                "max_candidates must be in 1..={MAX_CANDIDATES}, found {}",
                cfg.max_candidates
            ),
        ));
    }
    if cfg.score_threshold.is_nan() {
        return Err(Error::shape(label, "score_threshold is NaN"));
    }
    if !(cfg.iou_threshold.is_finite() && cfg.iou_threshold >= 0.0) {
        return Err(Error::shape(
            label,
            format!(
                "iou_threshold must be finite and >= 0, found {}",
                cfg.iou_threshold
            ),
        ));
    }
    if r >= 1 << 27 {
        return Err(Error::shape(
            label,
            format!("at most 2^27 rows per image, found {r}"),
        ));
    }
    if segments.len() > MAX_SEGMENTS {
        return Err(Error::shape(
            label,
            format!("at most {MAX_SEGMENTS} segments, found {}", segments.len()),
        ));
    }
    for (k, s) in segments.iter().enumerate() {
        if s.offset.checked_add(s.len).is_none_or(|end| end > r) {
            return Err(Error::shape(
                label,
                format!(
                    "segment {k} (offset {}, len {}) runs past the {r} rows per image",
                    s.offset, s.len
                ),
            ));
        }
        for (k2, o) in segments.iter().enumerate().take(k) {
            if s.offset < o.offset + o.len && o.offset < s.offset + s.len {
                return Err(Error::shape(
                    label,
                    format!(
                        "segment {k} (offset {}, len {}) overlaps segment {k2} (offset {}, len {})",
                        s.offset, s.len, o.offset, o.len
                    ),
                ));
            }
        }
    }
    Ok(())
}
