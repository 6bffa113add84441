//! The SGD update with momentum, weight decay and per-parameter multipliers (Caffe's SGDSolver), in place
//! on a parameter buffer and its momentum history.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, DType, Graph, StepDesc, TensorId, Weight};
use crate::ops::{Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub lr_mult: f32,
    pub decay_mult: f32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

pub static SHADER: Shader = crate::shader!("sgd", Params);

/// Layout of the `[4]` hyper-parameter tensor the host writes before each update (so the learning-rate
/// schedule needs no new plan): `[lr, momentum, weight_decay, grad_scale]`; Caffe's `grad_scale` is
/// `1 / iter_size`.
pub const HYPER_LEN: usize = 4;

/// Per-parameter multipliers of the learning rate and the weight decay (Caffe's `lr_mult`, `decay_mult`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Multipliers {
    pub lr: f32,
    pub decay: f32,
}

/// Updates `param` and its `history` (same shape, f32, buffers writable by shaders) in place from `grad`:
/// `v = momentum·v − lr·lr_mult·(grad_scale·g + weight_decay·decay_mult·w); w += v` with `hyper` =
/// `[lr, momentum, weight_decay, grad_scale]` ([`HYPER_LEN`]). Caffe keeps `−v` as its history. With
/// `clear_grad` the gradient is zeroed afterwards, so the next iteration can accumulate into it.
#[allow(clippy::too_many_arguments)]
pub fn sgd(
    g: &mut Graph,
    label: &str,
    param: &Weight,
    history: &Weight,
    grad: TensorId,
    hyper: TensorId,
    mult: Multipliers,
    clear_grad: bool,
) -> Result<()> {
    if !(mult.lr.is_finite() && mult.decay.is_finite() && mult.lr >= 0.0 && mult.decay >= 0.0) {
        return Err(Error::shape(
            label,
            format!(
                "multipliers of parameter '{}' must be finite and ≥ 0: lr_mult {}, decay_mult {}",
                param.name, mult.lr, mult.decay
            ),
        ));
    }
    for w in [param, history] {
        if w.shape != param.shape || w.dtype != DType::F32 {
            return Err(Error::shape(
                label,
                format!(
                    "SGD needs f32 buffers of the parameter's shape {:?}: '{}' is {:?} {:?}",
                    param.shape, w.name, w.dtype, w.shape
                ),
            ));
        }
    }
    if std::sync::Arc::ptr_eq(&param.buffer, &history.buffer) {
        return Err(Error::shape(
            label,
            format!(
                "parameter '{}' and its history '{}' must be different buffers",
                param.name, history.name
            ),
        ));
    }
    if g.shape(grad) != param.shape.as_slice() || g.dtype(grad) != DType::F32 {
        return Err(Error::shape(
            label,
            format!(
                "gradient '{}' is {:?} {:?}, expected f32 of parameter '{}' shape {:?}",
                g.info(grad).name,
                g.dtype(grad),
                g.shape(grad),
                param.name,
                param.shape
            ),
        ));
    }
    if g.shape(hyper) != [HYPER_LEN] || g.dtype(hyper) != DType::F32 {
        return Err(Error::shape(
            label,
            format!(
                "hyper-parameters '{}' are {:?} {:?}, expected f32 [lr, momentum, weight_decay, grad_scale] [{HYPER_LEN}]",
                g.info(hyper).name,
                g.dtype(hyper),
                g.shape(hyper)
            ),
        ));
    }
    let len = param.len();
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "sgd",
        constants: vec![("WG", WG as f64), ("CLEAR_GRAD", clear_grad as u32 as f64)],
        params: bytemuck::bytes_of(&Params {
            len: len as u32,
            lr_mult: mult.lr,
            decay_mult: mult.decay,
            _pad: 0,
        })
        .to_vec(),
        bindings: vec![hyper.into(), grad.into(), history.into(), param.into()],
        workgroups: dispatch_1d(len, WG),
        flops: 5 * len as u64,
    });
    Ok(())
}
