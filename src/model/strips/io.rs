//! The ends of a network in row strips: the input canvas written by preprocessing, and the heads decoded into
//! per-anchor rows strip by strip.

use crate::error::{Error, Result};
use crate::gpu::{DType, Graph, TensorId};
use crate::model::strips::map::{band_bytes, plan_bands, Map};
use crate::ops::decode::{decode_rows, BoxCoding, DecodeImage, Level};
use crate::ops::preprocess::{preprocess_rows, source_rows, CanvasRows, Preprocess};
use crate::ops::softmax2::{softmax2, ClassLayout};

/// The network input `[N, 3, H, W]` named `name`: one tensor when it fits `limit` bytes, else row pieces.
pub fn canvas(
    g: &mut Graph,
    name: &str,
    shape: [usize; 4],
    dtype: DType,
    limit: u64,
) -> Result<Map> {
    let elem = dtype.size();
    if band_bytes(shape, shape[2], elem) <= limit {
        let x = g.tensor_as(name, &shape, dtype)?;
        return Map::whole(g, x);
    }
    let need = |a: usize, b: usize| {
        let s = [shape[0], shape[1], b - a, shape[3]];
        (band_bytes(s, s[2], elem), name.to_string(), s)
    };
    let bands = plan_bands(shape[2], 1, limit, need)?;
    let strips = bands.len();
    let mut pieces = Vec::with_capacity(strips);
    for (j, &(a, b)) in bands.iter().enumerate() {
        let s = [shape[0], shape[1], b - a, shape[3]];
        pieces.push((
            a,
            g.tensor_as(&format!("{name}[strip {}/{strips}]", j + 1), &s, dtype)?,
        ));
    }
    Map::from_pieces(g, name, shape, pieces)
}

/// The packed RGB8 words of one image on the GPU: (first word, input tensor) — one tensor holding them all, or
/// row bands of the image, each holding the words one strip of a canvas reads.
pub type Packed = Vec<(usize, TensorId)>;

/// Preprocesses image `n` into every piece of `x`. When `rgb` holds no whole image (it is larger than a binding),
/// each strip reads a row band of it, declared here as an input named `name[strip j/k]` and added to `rgb`.
pub fn preprocess_map(
    g: &mut Graph,
    label: &str,
    name: &str,
    rgb: &mut Packed,
    x: &Map,
    n: usize,
    p: &Preprocess,
) -> Result<()> {
    let strips = x.pieces.len();
    let [h, w] = p.src_hw;
    let words = (h * w * 3).div_ceil(4);
    let whole = rgb
        .iter()
        .find(|(w0, t)| *w0 == 0 && g.info(*t).len() == words)
        .copied();
    for (j, &(row0, t)) in x.pieces.iter().enumerate() {
        let tag = format!("[strip {}/{strips}]", j + 1);
        let (src, word0) = match whole {
            Some((_, src)) => (src, 0),
            None => {
                let band = (row0, row0 + g.shape(t)[2]);
                let (lo, hi) = source_rows(p, band);
                // A strip wholly in the padding reads nothing: it still binds one word.
                let a = ((lo * w * 3) / 4).min(words - 1);
                let b = (hi * w * 3).div_ceil(4).clamp(a + 1, words);
                let src = g.input(&format!("{name}{tag}"), &[b - a])?;
                rgb.push((a, src));
                (src, a)
            }
        };
        let rows = CanvasRows {
            row0,
            canvas_h: x.shape[2],
            word0,
        };
        let l = match strips {
            1 => label.to_string(),
            _ => format!("{label}{tag}"),
        };
        preprocess_rows(g, &l, src, t, n, p, rows)?;
    }
    Ok(())
}

/// One level's heads in maps whose pieces line up (the heads of one SSH output), with its anchor geometry.
pub struct HeadMaps<'a> {
    pub class: &'a Map,
    pub layout: ClassLayout,
    pub bbox: &'a Map,
    pub landmarks: Option<&'a Map>,
    pub stride: usize,
    pub anchor_sizes: Vec<f32>,
    pub module: u32,
}

/// Rows tensors `[N, rows, 16]` of consecutive rows, each as (first row, tensor).
pub type Chunks = Vec<(usize, TensorId)>;

/// The decoded rows `[N, total, 16]` of group `k`: one tensor when it fits `limit` bytes (as the only chunk), else
/// `None` and no chunks (each strip's decode makes its own).
pub fn rows_tensor(
    g: &mut Graph,
    k: usize,
    n: usize,
    total: usize,
    limit: u64,
) -> Result<(Option<TensorId>, Chunks)> {
    if (n * total * 16 * 4) as u64 > limit {
        return Ok((None, Vec::new()));
    }
    let rows = g.tensor(&format!("rows{k}"), &[n, total, 16])?;
    Ok((Some(rows), vec![(0, rows)]))
}

/// Where a level's decoded rows go: from row `offset` of `rows`, or, with `rows` `None` (all rows of the image would
/// exceed a binding), into new rows tensors `[N, rows, 16]` of consecutive strips, each at most `limit` bytes.
pub struct RowsOut {
    pub rows: Option<TensorId>,
    pub offset: usize,
    pub limit: u64,
}

/// Softmax and decode of one level, strip by strip, into the rows `out` names (rows (y, x, a) of the level).
/// Returns the face probabilities `[N, A, H, W]` in the strips of the heads, and the rows tensors it made as
/// (first row, tensor).
#[allow(clippy::too_many_arguments)]
pub fn decode_map(
    g: &mut Graph,
    softmax_label: &str,
    label: &str,
    h: &HeadMaps,
    coding: &BoxCoding,
    images: &[DecodeImage],
    out: &RowsOut,
) -> Result<(Map, Chunks)> {
    let strips = h.class.pieces.len();
    let lined_up = |m: &Map| {
        m.pieces.len() == strips
            && (0..strips).all(|k| m.piece_rows(g, k) == h.class.piece_rows(g, k))
    };
    if !lined_up(h.bbox) || !h.landmarks.is_none_or(lined_up) {
        return Err(Error::shape(
            label,
            format!(
                "head strips of '{}', '{}' do not line up",
                h.class.name, h.bbox.name
            ),
        ));
    }
    let [_, _, _, w] = h.class.shape;
    let a = h.anchor_sizes.len();
    let n = h.class.shape[0];
    let bands: Vec<(usize, usize)> = (0..strips).map(|k| h.class.piece_rows(g, k)).collect();
    let cells = |k: usize| (bands[k].1 - bands[k].0) * w * a;
    // Per strip: (rows tensor, its first row within it); consecutive strips share one while it fits the limit.
    let mut target: Vec<(TensorId, usize)> = Vec::with_capacity(strips);
    let mut made = Vec::new();
    match out.rows {
        Some(r) => target.extend((0..strips).map(|_| (r, 0))),
        None => {
            let per_row = (n * 16 * 4) as u64;
            let mut k = 0;
            while k < strips {
                let (mut end, mut len) = (k + 1, cells(k));
                while end < strips && (len + cells(end)) as u64 * per_row <= out.limit {
                    len += cells(end);
                    end += 1;
                }
                let first = out.offset + bands[k].0 * w * a;
                let t = g.tensor(
                    &format!("{label}.rows[chunk {}]", made.len() + 1),
                    &[n, len, 16],
                )?;
                made.push((first, t));
                target.extend((k..end).map(|_| (t, first)));
                k = end;
            }
        }
    }
    let mut scores = Vec::with_capacity(strips);
    for (k, &(t, first)) in target.iter().enumerate() {
        let tag = match strips {
            1 => String::new(),
            _ => format!("[strip {}/{strips}]", k + 1),
        };
        let (y0, _) = h.class.piece_rows(g, k);
        let s = softmax2(
            g,
            &format!("{softmax_label}{tag}"),
            h.class.pieces[k].1,
            h.layout,
        )?;
        let level = Level {
            scores: s,
            bbox: h.bbox.pieces[k].1,
            landmarks: h.landmarks.map(|l| l.pieces[k].1),
            stride: h.stride,
            anchor_sizes: h.anchor_sizes.clone(),
            module: h.module,
        };
        let at = out.offset + y0 * w * a - first;
        let l = format!("{label}{tag}");
        decode_rows(g, &l, &level, coding, images, t, at, y0)?;
        scores.push((y0, s));
    }
    let hh = h.class.shape[2];
    Ok((
        Map::from_pieces(g, softmax_label, [n, a, hh, w], scores)?,
        made,
    ))
}
