//! Backward of [`upsample_bilinear`](crate::ops::upsample_bilinear::upsample_bilinear) (SSH's fixed bilinear
//! ×2 deconvolution with its top-left crop), f32. The filter is fixed, so only the input gradient exists.

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

/// The forward's `Params` (32 bytes, size asserted there) describe the same map, so the backward reuses them
/// with `len` = N·C·H·W (one invocation per dx element) and the unsplit row window (0, 0, H).
pub use crate::ops::upsample_bilinear::Params;

pub static SHADER: Shader = crate::shader!("upsample_bilinear_grad", Params);

/// Input gradient `dx` `[N, C, H, W]` (`x_shape`, the forward input's shape) of the bilinear ×2 upsampling
/// cropped to (Ho, Wo), from the output gradient `dy` `[N, C, Ho, Wo]` (f32, 1 ≤ Ho ≤ 2H, 1 ≤ Wo ≤ 2W):
/// the transpose of the forward map. Per axis `dx[j] = 0.75·(dy[2j] + dy[2j+1]) + 0.25·(dy[2j−1] + dy[2j+2])`
/// with `dy` = 0 outside the crop (the crop's backward zero-pads the dropped rows and columns).
pub fn upsample_bilinear_grad(
    g: &mut Graph,
    label: &str,
    dy: TensorId,
    x_shape: [usize; 4],
) -> Result<TensorId> {
    let [n, c, h, w] = x_shape;
    let [dn, dc, ho, wo] = g.nchw(label, dy)?;
    crate::ops::relu_grad::f32_maps(g, label, &[dy])?;
    // Any crop of the 2H×2W map is a valid forward output, so any (Ho, Wo) from 1×1 up to it is accepted.
    if [dn, dc] != [n, c] || !(1..=2 * h).contains(&ho) || !(1..=2 * w).contains(&wo) {
        return Err(Error::shape(
            label,
            format!(
                "output gradient '{}' has shape {:?}, expected [{n}, {c}, Ho, Wo] with 1 ≤ Ho ≤ {} and \
                 1 ≤ Wo ≤ {} (a crop of the ×2 upsampling of input shape {x_shape:?})",
                g.info(dy).name,
                g.shape(dy),
                2 * h,
                2 * w
            ),
        ));
    }
    let dx = g.tensor(label, &x_shape)?;
    let len = n * c * h * w;
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "upsample_bilinear_grad",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params {
            len: len as u32,
            h: h as u32,
            w: w as u32,
            ho: ho as u32,
            wo: wo as u32,
            oy0: 0,
            row0: 0,
            h_full: h as u32,
        })
        .to_vec(),
        bindings: vec![dy.into(), dx.into()],
        workgroups: dispatch_1d(len, WG),
        flops: 0,
    });
    Ok(dx)
}
