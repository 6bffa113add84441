//! After the segment-major sort of `recs [N, len, 2]`: marks each record a candidate (group 0: within its segment's
//! top_k and score above the threshold) or not (group 1), in place, and adds each image's candidates to `count [N]`
//! (which must be cleared first).

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

/// The same params as `select_keys`: the segment table and the threshold key.
pub use crate::ops::select_keys::Params;

pub static SHADER: Shader = crate::shader!("select_topk", Params);

/// Appends the marking step over `recs` (`[N, len, 2]`, sorted by segment), counting into `count` (`[N]`).
pub fn select_topk(
    g: &mut Graph,
    label: &str,
    recs: TensorId,
    count: TensorId,
    params: &Params,
) -> Result<()> {
    let len = params.len as usize;
    let n = g.shape(recs)[0];
    if g.shape(recs) != [n, len, 2] || g.shape(count) != [n] {
        return Err(Error::shape(
            label,
            format!(
                "records must be [N, {len}, 2] and count [N], found {:?} and {:?}",
                g.shape(recs),
                g.shape(count)
            ),
        ));
    }
    let mut workgroups = dispatch_1d(len, WG);
    workgroups[2] = n as u32;
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "select_topk",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(params).to_vec(),
        bindings: vec![recs.into(), count.into()],
        workgroups,
        flops: 0,
    });
    Ok(())
}
