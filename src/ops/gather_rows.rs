//! Candidates of a selection over decoded rows held in chunks: `rows` chunk `[N, chunk, 16]` (rows
//! `base..base + chunk` of each image) → `cand [N, cap, 16]` at the sorted records' positions; after the last chunk
//! the records `[N, len, 2]` name those positions. Used by [`nms::select_chunks`](crate::ops::nms::select_chunks).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub cap: u32,
    pub base: u32,
    pub chunk: u32,
    pub last: u32,
    pub _pad: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

pub static SHADER: Shader = crate::shader!("gather_rows", Params);

/// Appends the copy of the candidates among rows `base..` (the chunk `rows`) into `cand`; `last` renumbers the
/// records afterwards (the chunk dispatched last).
#[allow(clippy::too_many_arguments)]
pub fn gather_rows(
    g: &mut Graph,
    label: &str,
    rows: TensorId,
    base: usize,
    count: TensorId,
    recs: TensorId,
    cand: TensorId,
    last: bool,
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
    let (len, cap) = (g.shape(recs)[1], g.shape(cand)[1]);
    if g.shape(recs) != [n, len, 2] || g.shape(cand) != [n, cap, 16] || g.shape(count) != [n] {
        return Err(Error::shape(
            label,
            format!(
                "records {:?}, candidates {:?} and counts {:?} must be [{n}, len, 2], [{n}, cap, 16] and [{n}]",
                g.shape(recs),
                g.shape(cand),
                g.shape(count)
            ),
        ));
    }
    let mut workgroups = dispatch_1d(cap, WG);
    workgroups[2] = n as u32;
    let u = |v: usize| v as u32;
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "gather_rows",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params {
            len: u(len),
            cap: u(cap),
            base: u(base),
            chunk: u(chunk),
            last: last as u32,
            _pad: [0; 3],
        })
        .to_vec(),
        bindings: vec![rows.into(), count.into(), recs.into(), cand.into()],
        workgroups,
        flops: 0,
    });
    Ok(())
}
