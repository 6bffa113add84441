//! Smooth L1 loss with inside and outside weights (Fast R-CNN's `SmoothL1Loss`, which the SSH code trains
//! its box regression with) and its gradient, f32.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::Shader;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub num: u32,
    pub sigma2: f32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

pub static SHADER: Shader = crate::shader!("smooth_l1", Params);

/// SSH's σ: quadratic for |d| < 1/σ² = 1/9.
pub const SSH_SIGMA: f32 = 3.0;

/// Loss and gradient tensors of [`smooth_l1`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmoothL1 {
    /// `[1]`: `Σ |w_out · f(w_in · (pred − target))| / N`.
    pub loss: TensorId,
    /// The shape of `pred`: `f'(d) · w_in · w_out / N`.
    pub grad: TensorId,
}

/// Smooth L1 of `pred` against `target` with weights `w_in` and `w_out`, all `[N, …]` of one shape (SSH:
/// `[N, 4A, H, W]`): `f(d) = 0.5·σ²·d²` for `|d| < 1/σ²`, else `|d| − 0.5/σ²`, summed and divided by the
/// batch size N as Caffe does (SSH's outside weights carry its 1/num_sampled normaliser).
pub fn smooth_l1(
    g: &mut Graph,
    label: &str,
    [pred, target, w_in, w_out]: [TensorId; 4],
    sigma: f32,
) -> Result<SmoothL1> {
    let shape = crate::ops::relu_grad::f32_maps(g, label, &[pred, target, w_in, w_out])?;
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(Error::shape(
            label,
            format!("smooth L1 sigma must be finite and > 0, found {sigma}"),
        ));
    }
    let loss = g.tensor(&format!("{label}.loss"), &[1])?;
    let grad = g.tensor(&format!("{label}.grad"), &shape)?;
    let len = shape.iter().product::<usize>();
    let params = bytemuck::bytes_of(&Params {
        len: len as u32,
        num: shape[0] as u32,
        sigma2: sigma * sigma,
        _pad: 0,
    })
    .to_vec();
    let inputs = [pred.into(), target.into(), w_in.into(), w_out.into()];
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "smooth_l1",
        constants: vec![],
        params: params.clone(),
        bindings: [inputs.to_vec(), vec![loss.into()]].concat(),
        workgroups: [1, 1, 1],
        flops: 0,
    });
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "smooth_l1_grad",
        constants: vec![],
        params,
        bindings: [inputs.to_vec(), vec![grad.into()]].concat(),
        workgroups: dispatch_1d(len, 256),
        flops: 0,
    });
    Ok(SmoothL1 { loss, grad })
}
