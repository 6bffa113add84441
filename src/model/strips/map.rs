//! Feature maps held as row pieces, and the choice of row bands that fit one storage binding.

use crate::error::{Error, Result};
use crate::gpu::{Graph, TensorId};
use crate::ops::copy_rows::copy_rows;

/// A feature map `[N, C, H, W]` held as consecutive row pieces, each its own tensor `[N, C, rows, W]`. A map that
/// fits one binding is one piece: the plain tensor, exactly as without strips.
#[derive(Clone, Debug)]
pub struct Map {
    /// The name of the full map (its layer), for labels and errors.
    pub name: String,
    pub shape: [usize; 4],
    /// (first row, tensor), in row order, covering rows 0..H without overlap.
    pub pieces: Vec<(usize, TensorId)>,
}

impl Map {
    /// The map held by one tensor.
    pub fn whole(g: &Graph, id: TensorId) -> Result<Map> {
        let name = g.info(id).name.clone();
        Ok(Map {
            shape: g.nchw(&name, id)?,
            name,
            pieces: vec![(0, id)],
        })
    }

    /// Pieces as (first row, tensor), checking that they tile `shape`'s rows.
    pub fn from_pieces(
        g: &Graph,
        name: &str,
        shape: [usize; 4],
        pieces: Vec<(usize, TensorId)>,
    ) -> Result<Map> {
        let mut next = 0;
        for &(a, t) in &pieces {
            let s = g.nchw(name, t)?;
            if a != next || [s[0], s[1], s[3]] != [shape[0], shape[1], shape[3]] {
                return Err(Error::shape(
                    name,
                    format!(
                        "piece '{}' {s:?} at row {a} does not continue {shape:?} at row {next}",
                        g.info(t).name
                    ),
                ));
            }
            next += s[2];
        }
        if next != shape[2] {
            return Err(Error::shape(
                name,
                format!("pieces cover {next} of the {} rows", shape[2]),
            ));
        }
        Ok(Map {
            name: name.to_string(),
            shape,
            pieces,
        })
    }

    /// The tensor when the map is one piece.
    pub fn single(&self) -> Option<TensorId> {
        match self.pieces.as_slice() {
            [(_, t)] => Some(*t),
            _ => None,
        }
    }

    /// Rows of piece `k`: [first, end).
    pub fn piece_rows(&self, g: &Graph, k: usize) -> (usize, usize) {
        let (a, t) = self.pieces[k];
        (a, a + g.shape(t)[2])
    }

    /// Rows [a, b) as one tensor: the piece itself when one covers exactly that range, else a tensor named
    /// `label` gathered from the pieces with row copies.
    pub fn window(&self, g: &mut Graph, label: &str, a: usize, b: usize) -> Result<TensorId> {
        if let Some(&(_, t)) = self
            .pieces
            .iter()
            .enumerate()
            .find(|&(k, _)| self.piece_rows(g, k) == (a, b))
            .map(|(_, p)| p)
        {
            return Ok(t);
        }
        let [n, c, _, w] = self.shape;
        let dtype = g.dtype(self.pieces[0].1);
        let out = g.tensor_as(label, &[n, c, b - a, w], dtype)?;
        for k in 0..self.pieces.len() {
            let (pa, pb) = self.piece_rows(g, k);
            let (lo, hi) = (pa.max(a), pb.min(b));
            if lo < hi {
                let src = self.pieces[k].1;
                let tag = format!("{label}.rows{lo}");
                copy_rows(g, &tag, src, lo - pa, out, lo - a, hi - lo)?;
            }
        }
        Ok(out)
    }

    /// The whole map as one tensor (a copy when it is held in pieces; it must then fit one binding).
    pub fn joined(&self, g: &mut Graph) -> Result<TensorId> {
        self.window(g, &format!("{}.joined", self.name), 0, self.shape[2])
    }
}

/// Bytes of `rows` rows of a map of `shape` with `elem`-byte elements.
pub fn band_bytes(shape: [usize; 4], rows: usize, elem: usize) -> u64 {
    (shape[0] * shape[1] * rows * shape[3] * elem) as u64
}

/// The largest tensor a band of a stage needs: (bytes, tensor name, its shape for the band).
pub type Need = (u64, String, [usize; 4]);

/// The fewest bands of about equal height (multiples of `align` rows but the last) covering `h` output rows whose
/// every tensor (`need(a, b)` gives the largest of band [a, b)) fits `limit` bytes. When even the thinnest band does
/// not fit, the error names the tensor, its size and the limit.
pub fn plan_bands(
    h: usize,
    align: usize,
    limit: u64,
    need: impl Fn(usize, usize) -> Need,
) -> Result<Vec<(usize, usize)>> {
    let split = |r: usize| -> Vec<(usize, usize)> {
        (0..h).step_by(r).map(|a| (a, (a + r).min(h))).collect()
    };
    let worst = |r: usize| -> Need {
        split(r)
            .into_iter()
            .map(|(a, b)| need(a, b))
            .max_by_key(|n| n.0)
            .expect("at least one band")
    };
    let align = align.max(1).min(h);
    let thin = worst(align);
    if thin.0 > limit {
        let (bytes, name, shape) = thin;
        return Err(Error::TooLarge {
            name: format!(
                "{name} (one band of {} rows, the thinnest row strip)",
                shape[2]
            ),
            bytes,
            limit,
            shape: shape.to_vec(),
        });
    }
    // Largest band height (in align units) that fits, by bisection: taller bands never need smaller tensors.
    let (mut lo, mut hi) = (1, h.div_ceil(align));
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if worst(mid * align).0 <= limit {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    // Same band count, heights evened out.
    let k = h.div_ceil(lo * align);
    let r = h.div_ceil(k).div_ceil(align) * align;
    Ok(split(r))
}

/// Collects the bands of a stage's output into as few pieces as fit `limit` bytes: a piece of several bands is
/// one tensor each band is pasted into as soon as it is computed (so band outputs are freed at once and a map is
/// not held in hundreds of small tensors).
pub struct Assembler {
    name: String,
    shape: [usize; 4],
    /// Per band: (first band of its piece, last band of its piece).
    group: Vec<(usize, usize)>,
    bands: Vec<(usize, usize)>,
    open: Option<TensorId>,
    pieces: Vec<(usize, TensorId)>,
}

impl Assembler {
    pub fn new(
        name: &str,
        shape: [usize; 4],
        elem: usize,
        bands: &[(usize, usize)],
        limit: u64,
    ) -> Self {
        let mut group = Vec::with_capacity(bands.len());
        let mut k = 0;
        while k < bands.len() {
            let mut end = k + 1;
            while end < bands.len() && band_bytes(shape, bands[end].1 - bands[k].0, elem) <= limit {
                end += 1;
            }
            group.extend((k..end).map(|_| (k, end - 1)));
            k = end;
        }
        Assembler {
            name: name.to_string(),
            shape,
            group,
            bands: bands.to_vec(),
            open: None,
            pieces: Vec::new(),
        }
    }

    /// Takes the output `t` of band `j` (bands in order).
    pub fn add(&mut self, g: &mut Graph, j: usize, t: TensorId) -> Result<()> {
        let (first, last) = self.group[j];
        if first == last {
            self.pieces.push((self.bands[j].0, t));
            return Ok(());
        }
        let (a, b) = (self.bands[first].0, self.bands[last].1);
        if j == first {
            let [n, c, _, w] = self.shape;
            let tag = format!("[piece {}]", self.pieces.len() + 1);
            let piece = g.tensor_as(
                &format!("{}{tag}", self.name),
                &[n, c, b - a, w],
                g.dtype(t),
            )?;
            self.open = Some(piece);
            self.pieces.push((a, piece));
        }
        let piece = self.open.expect("a piece is open");
        let (oa, ob) = self.bands[j];
        copy_rows(
            g,
            &format!("{}.paste{}", self.name, oa),
            t,
            0,
            piece,
            oa - a,
            ob - oa,
        )
    }

    pub fn finish(self, g: &Graph) -> Result<Map> {
        Map::from_pieces(g, &self.name, self.shape, self.pieces)
    }
}
