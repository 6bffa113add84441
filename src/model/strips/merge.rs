//! The top-down merges of both networks in row strips: `out = big + up(small)` (retinaface-mnv2's FPN: nearest
//! ×2; ssh-vgg16's M1 fusion: the fixed bilinear ×2 deconvolution cropped to `big`'s size).

use crate::error::Result;
use crate::gpu::Graph;
use crate::model::strips::map::{band_bytes, plan_bands, Assembler, Map, Need};
use crate::ops::upsample_bilinear::upsample_bilinear_rows;
use crate::ops::upsample_nearest::{upsample_nearest_rows, RowWindow};
use crate::ops::{add::add, Activation};

/// The resize of a merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Up {
    Nearest,
    Bilinear,
}

/// Labels of a merge's two steps, e.g. (`fpn.up3`, `fpn.sum2`), and the order of the sum's operands.
pub struct Merge<'a> {
    pub up: &'a str,
    pub add: &'a str,
    pub kind: Up,
    /// The upsampled map is the sum's first operand (ssh-vgg16), else the second (retinaface-mnv2).
    pub up_first: bool,
}

impl Up {
    /// Input rows [lo, hi) of a map of `h` rows that output rows [a, b) of its resize to `ho` rows read.
    fn source_rows(self, h: usize, ho: usize, (a, b): (usize, usize)) -> (usize, usize) {
        match self {
            Up::Bilinear => ((a >> 1).saturating_sub(1), (((b - 1) >> 1) + 2).min(h)),
            Up::Nearest => {
                // The shader's f32 formula, with a row of margin either side against any rounding doubt.
                let src = |d: usize| ((d as f32 + 0.5) * (h as f32 / ho as f32)).floor() as usize;
                (src(a).saturating_sub(1).min(h - 1), (src(b - 1) + 2).min(h))
            }
        }
    }
}

/// Appends `big + up(small)` (the sum at `big`'s shape); in row strips of `big` when a full map would exceed
/// `limit` bytes or an input is held in pieces.
pub fn run_merge(g: &mut Graph, m: &Merge, small: &Map, big: &Map, limit: u64) -> Result<Map> {
    let elem = g.dtype(big.pieces[0].1).size();
    let [n, c, h, w] = big.shape;
    let hs = small.shape[2];
    let full = band_bytes(big.shape, h, elem);
    let sum = |g: &mut Graph, label: &str, up, b| {
        let (x, y) = if m.up_first { (up, b) } else { (b, up) };
        add(g, label, x, y, Activation::None)
    };
    if let (Some(s), Some(b), true) = (small.single(), big.single(), full <= limit) {
        let up = match m.kind {
            Up::Nearest => crate::ops::upsample_nearest::upsample_nearest(g, m.up, s, [h, w])?,
            Up::Bilinear => crate::ops::upsample_bilinear::upsample_bilinear(g, m.up, s, [h, w])?,
        };
        let out = sum(g, m.add, up, b)?;
        return Map::whole(g, out);
    }
    let need = |a: usize, b: usize| -> Need {
        let (lo, hi) = m.kind.source_rows(hs, h, (a, b));
        let s = band_bytes(small.shape, hi - lo, elem);
        let o = band_bytes(big.shape, b - a, elem);
        if s > o {
            (
                s,
                small.name.clone(),
                [n, small.shape[1], hi - lo, small.shape[3]],
            )
        } else {
            (o, m.add.to_string(), [n, c, b - a, w])
        }
    };
    let bands = plan_bands(h, 1, limit, need)?;
    let strips = bands.len();
    let mut pieces = Assembler::new(m.add, big.shape, elem, &bands, limit);
    for (j, &(a, b)) in bands.iter().enumerate() {
        let tag = format!("[strip {}/{strips}]", j + 1);
        let (lo, hi) = m.kind.source_rows(hs, h, (a, b));
        let xs = small.window(g, &format!("{}.input{tag}", m.up), lo, hi)?;
        let xb = big.window(g, &format!("{}.input{tag}", m.add), a, b)?;
        let win = RowWindow {
            oy0: a,
            row0: lo,
            h_full: hs,
            ho_full: h,
        };
        let label = format!("{}{tag}", m.up);
        let up = match m.kind {
            Up::Nearest => upsample_nearest_rows(g, &label, xs, [b - a, w], win)?,
            Up::Bilinear => upsample_bilinear_rows(g, &label, xs, [b - a, w], win)?,
        };
        let out = sum(g, &format!("{}{tag}", m.add), up, xb)?;
        pieces.add(g, j, out)?;
    }
    pieces.finish(g)
}
