//! SSH's fixed bilinear ×2 upsampling (the M1 fusion deconvolution) with its top-left crop.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::upsample_nearest::RowWindow;
use crate::ops::{Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub h: u32,
    pub w: u32,
    pub ho: u32,
    pub wo: u32,
    /// Row strips, see [`RowWindow`].
    pub oy0: u32,
    pub row0: u32,
    pub h_full: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

pub static SHADER: Shader = crate::shader!("upsample_bilinear", Params);
pub static SHADER_F16: Shader = crate::shader_f16!("upsample_bilinear", Params);

/// SSH's fixed bilinear ×2 deconvolution (Caffe Deconvolution k4 s2 p1, group = C, taps 0.25/0.75, zero border)
/// of `x` `[N, C, H, W]` (full size 2H×2W), cropped top-left to `out_hw` = (Ho, Wo) with Ho ≤ 2H, Wo ≤ 2W:
/// out `[N, C, Ho, Wo]`.
///
/// Closed form per axis: `up[2j] = 0.75·x[j] + 0.25·x[j−1]`, `up[2j+1] = 0.75·x[j] + 0.25·x[j+1]`, `x[−1] = x[H] = 0`.
pub fn upsample_bilinear(
    g: &mut Graph,
    label: &str,
    x: TensorId,
    out_hw: [usize; 2],
) -> Result<TensorId> {
    let h = g.nchw(label, x)?[2];
    upsample_bilinear_rows(g, label, x, out_hw, RowWindow::whole(h, out_hw[0]))
}

/// [`upsample_bilinear`] of the output rows `win` names (row strips; `win.ho_full` is the crop's height); `out_hw`
/// is the strip's (rows, Wo). x must hold input rows (oy0 >> 1) − 1 … ((oy0 + rows − 1) >> 1) + 1 (clipped).
pub fn upsample_bilinear_rows(
    g: &mut Graph,
    label: &str,
    x: TensorId,
    out_hw: [usize; 2],
    win: RowWindow,
) -> Result<TensorId> {
    let [n, c, h, w] = g.nchw(label, x)?;
    let [ho, wo] = out_hw;
    win.check(label, h, ho)?;
    let need = (
        (win.oy0 >> 1).saturating_sub(1),
        (((win.oy0 + ho.max(1) - 1) >> 1) + 2).min(win.h_full),
    );
    if need.0 < win.row0 || need.1 > win.row0 + h {
        return Err(Error::shape(
            label,
            format!(
                "input rows {}..{} do not hold rows {need:?} that output rows {win:?} read",
                win.row0,
                win.row0 + h
            ),
        ));
    }
    let h_full = win.h_full;
    if ho == 0 || wo == 0 || win.ho_full > 2 * h_full || wo > 2 * w {
        return Err(Error::shape(
            label,
            format!(
                "upsample_bilinear crop target {out_hw:?} must be between [1, 1] and the ×2 size [{}, {}] of input '{}' {:?}",
                2 * h,
                2 * w,
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
        entry: "upsample_bilinear",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params {
            len: len as u32,
            h: h as u32,
            w: w as u32,
            ho: ho as u32,
            wo: wo as u32,
            oy0: win.oy0 as u32,
            row0: win.row0 as u32,
            h_full: h_full as u32,
        })
        .to_vec(),
        bindings: vec![x.into(), out.into()],
        workgroups: dispatch_1d(len, WG),
        flops: 0,
    });
    Ok(out)
}
