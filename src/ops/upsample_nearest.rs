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
    /// Row strips, see [`RowWindow`].
    pub oy0: u32,
    pub row0: u32,
    pub h_full: u32,
    pub _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 48);

/// Which rows of a resize a step computes (row strips): output rows `oy0..oy0 + Ho` of a resize of a map of
/// `h_full` rows to `ho_full` rows, from an input holding rows `row0..row0 + H` of it. Every output value is the
/// one the full resize computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowWindow {
    pub oy0: usize,
    pub row0: usize,
    pub h_full: usize,
    pub ho_full: usize,
}

impl RowWindow {
    /// The whole map: input rows 0..h to output rows 0..ho.
    pub fn whole(h: usize, ho: usize) -> Self {
        RowWindow {
            oy0: 0,
            row0: 0,
            h_full: h,
            ho_full: ho,
        }
    }

    /// Checks that the input rows `row0..row0 + h` and output rows `oy0..oy0 + ho` lie in the maps.
    pub fn check(&self, label: &str, h: usize, ho: usize) -> Result<()> {
        if self.row0 + h > self.h_full || self.oy0 + ho > self.ho_full {
            return Err(Error::shape(
                label,
                format!(
                    "row window {self:?} with {h} input and {ho} output rows runs past the maps"
                ),
            ));
        }
        Ok(())
    }
}

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
    let h = g.nchw(label, x)?[2];
    upsample_nearest_rows(g, label, x, out_hw, RowWindow::whole(h, out_hw[0]))
}

/// [`upsample_nearest`] of the output rows `win` names (row strips); `out_hw` is the strip's (rows, Wo).
pub fn upsample_nearest_rows(
    g: &mut Graph,
    label: &str,
    x: TensorId,
    out_hw: [usize; 2],
    win: RowWindow,
) -> Result<TensorId> {
    let [n, c, h, w] = g.nchw(label, x)?;
    let [ho, wo] = out_hw;
    win.check(label, h, ho)?;
    // The rows the strip reads must be in x.
    let src = |d: usize| {
        (((d as f32 + 0.5) * (win.h_full as f32 / win.ho_full as f32)).floor() as usize)
            .min(win.h_full - 1)
    };
    if ho > 0 && (src(win.oy0) < win.row0 || src(win.oy0 + ho - 1) >= win.row0 + h) {
        return Err(Error::shape(
            label,
            format!(
                "input rows {}..{} do not hold the rows output rows {win:?} read",
                win.row0,
                win.row0 + h
            ),
        ));
    }
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
            scale_y: win.h_full as f32 / win.ho_full as f32,
            scale_x: w as f32 / wo as f32,
            oy0: win.oy0 as u32,
            row0: win.row0 as u32,
            h_full: win.h_full as u32,
            _pad: [0; 2],
        })
        .to_vec(),
        bindings: vec![x.into(), out.into()],
        workgroups: dispatch_1d(len, WG),
        flops: 0,
    });
    Ok(out)
}
