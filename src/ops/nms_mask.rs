//! Suppression bitmask of the first `min(count, cap)` sorted candidates: `rows [N, R, 16]`, `recs [N, len, 2]`,
//! `count [N]` → `mask [N, cap, ceil(cap / 32)]` u32, bit j of row i set when j > i and IoU(i, j) > iou_threshold.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub rows: u32,
    pub len: u32,
    pub cap: u32,
    pub words: u32,
    pub iou_threshold: f32,
    /// Must be 0: the shader XORs products with it so that no compiler can fuse them into an FMA.
    pub zero: u32,
    pub _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

pub static SHADER: Shader = crate::shader!("nms_mask", Params);

/// Appends the mask step; `plus_one` selects py-faster-rcnn IoU (+1 areas) over TF's.
/// `params.iou_threshold` must be finite and ≥ 0 (checked by `nms::select`).
#[allow(clippy::too_many_arguments)]
pub fn nms_mask(
    g: &mut Graph,
    label: &str,
    rows: TensorId,
    recs: TensorId,
    count: TensorId,
    mask: TensorId,
    params: &Params,
    plus_one: bool,
) -> Result<()> {
    let n = g.shape(rows)[0];
    let (cap, words) = (params.cap as usize, params.words as usize);
    if g.shape(mask) != [n, cap, words] || words != cap.div_ceil(32) {
        return Err(Error::shape(
            label,
            format!(
                "mask must be [{n}, {cap}, {}], found {:?}",
                cap.div_ceil(32),
                g.shape(mask)
            ),
        ));
    }
    let mut workgroups = dispatch_1d(cap * words, WG);
    workgroups[2] = n as u32;
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "nms_mask",
        constants: vec![("WG", WG as f64), ("PLUS_ONE", plus_one as u32 as f64)],
        params: bytemuck::bytes_of(params).to_vec(),
        bindings: vec![rows.into(), recs.into(), count.into(), mask.into()],
        workgroups,
        flops: 0,
    });
    Ok(())
}
