//! Sort records of decoded rows: `rows [N, R, 16]` (score in column 15) → `recs [N, len, 2]` u32, one
//! `(segment << 27 | row, score key)` record per row of a segment, `u32::MAX` records elsewhere (they sort last).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

/// Most segments one selection takes; group 31 of a record is reserved for "no segment".
pub const MAX_SEGMENTS: usize = 31;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub rows: u32,
    pub len: u32,
    pub segments: u32,
    /// [`score_key`] of the score threshold (used by `select_topk`, which shares these params).
    pub thr_key: u32,
    /// Per segment: (offset, len, first sorted position, top_k clamped to len).
    pub seg: [[u32; 4]; 32],
}
const _: () = assert!(std::mem::size_of::<Params>() == 528);

pub static SHADER: Shader = crate::shader!("select_keys", Params);

/// The key a record sorts by, as the shader computes it: ascending keys are descending scores, NaN sorts after
/// every number (key `u32::MAX`), −0 ties +0. `score > t` ⟺ `score_key(score) < score_key(t)` for t not NaN.
pub fn score_key(s: f32) -> u32 {
    let mut b = s.to_bits();
    if b & 0x7fff_ffff > 0x7f80_0000 {
        return u32::MAX;
    }
    if b == 0x8000_0000 {
        b = 0;
    }
    let mono = if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    };
    !mono
}

/// Appends the step writing every record of `recs` (`[N, len, 2]`) from `rows` (`[N, R, 16]`, R ≤ len).
pub fn select_keys(
    g: &mut Graph,
    label: &str,
    rows: TensorId,
    recs: TensorId,
    params: &Params,
) -> Result<()> {
    select_keys_chunk(g, label, rows, 0, recs, params)
}

/// [`select_keys`] for rows held in chunks: `rows` `[N, chunk, 16]` holds rows `base..base + chunk` of each image
/// (of `params.rows`); writes their records, and those past R when it is the last chunk.
pub fn select_keys_chunk(
    g: &mut Graph,
    label: &str,
    rows: TensorId,
    base: usize,
    recs: TensorId,
    params: &Params,
) -> Result<()> {
    let (n, chunk) = match g.shape(rows) {
        &[n, r, 16] => (n, r),
        s => {
            return Err(Error::shape(
                label,
                format!(
                    "rows '{}' must be [N, R, 16], found {s:?}",
                    g.info(rows).name
                ),
            ))
        }
    };
    let (len, r) = (params.len as usize, params.rows as usize);
    if g.shape(recs) != [n, len, 2] || base + chunk > r || r > len {
        return Err(Error::shape(
            label,
            format!(
                "records '{}' must be [{n}, {len}, 2] with {len} >= R = {r} >= rows {base}..{} of '{}', found {:?}",
                g.info(recs).name,
                base + chunk,
                g.info(rows).name,
                g.shape(recs)
            ),
        ));
    }
    // The last chunk also writes the records past R (they sort last).
    let threads = if base + chunk == r { len - base } else { chunk };
    let mut p = *params;
    p.seg[31] = [base as u32, chunk as u32, threads as u32, 0];
    let mut workgroups = dispatch_1d(threads, WG);
    workgroups[2] = n as u32;
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "select_keys",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&p).to_vec(),
        bindings: vec![rows.into(), recs.into()],
        workgroups,
        flops: 0,
    });
    Ok(())
}
