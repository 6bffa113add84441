//! Nearest-neighbour resize as TensorFlow's ResizeNearestNeighbor (RetinaFace's FPN up-sampling).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub h: u32,
    pub w: u32,
    pub ho: u32,
    pub wo: u32,
    /// `H as f32 / Ho as f32`, rounded once on the host as TF does.
    pub scale_y: f32,
    pub scale_x: f32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

pub static SHADER: Shader = crate::shader!("upsample_nearest", Params);
pub static SHADER_F16: Shader = crate::shader_f16!("upsample_nearest", Params);

/// TF ResizeNearestNeighbor (align_corners = false, half_pixel_centers = true): src = min(floor((dst + 0.5)·in/out), in − 1)
/// per axis (at exactly 2× this is dst >> 1). x `[N, C, H, W]` -> `[N, C, out_hw]`.
pub fn upsample_nearest(
    g: &mut Graph,
    label: &str,
    x: TensorId,
    out_hw: [usize; 2],
) -> Result<TensorId> {
    let [n, c, h, w] = g.nchw(label, x)?;
    let [ho, wo] = out_hw;
    if ho == 0 || wo == 0 {
        return Err(Error::shape(
            label,
            format!(
                "upsample_nearest target size {out_hw:?} of input '{}' {:?} must be at least [1, 1]",
                g.info(x).name,
                g.shape(x)
            ),
        ));
    }
    let dtype = g.dtype(x);
    let out = g.tensor_as(label, &[n, c, ho, wo], dtype)?;
    let len = n * c * ho * wo;
    g.push(StepDesc {
        label: label.to_string(),
        shader: crate::ops::variant(dtype, &SHADER, &SHADER_F16),
        entry: "upsample_nearest",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params {
            len: len as u32,
            h: h as u32,
            w: w as u32,
            ho: ho as u32,
            wo: wo as u32,
            scale_y: h as f32 / ho as f32,
            scale_x: w as f32 / wo as f32,
            _pad: 0,
        })
        .to_vec(),
        bindings: vec![x.into(), out.into()],
        workgroups: dispatch_1d(len, WG),
        flops: 0,
    });
    Ok(out)
}
