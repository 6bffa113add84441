//! Backward of a ReLU from its forward output: `dx = dy · [y > 0]`, any shape, f32.
//!
//! The elementwise sum ([`add`](crate::ops::add)) needs no backward shader: the gradient of each addend is
//! the sum's gradient itself (masked first by this op when the sum had a fused ReLU). Where one tensor feeds
//! several steps, its gradient is the sum of theirs, which [`add`](crate::ops::add) computes.

use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub _pad: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

pub static SHADER: Shader = crate::shader!("relu_grad", Params);

/// `dx = dy` where the forward output `y` is > 0, else 0; `y`, `dy` f32 of one shape; returns `dx`.
pub fn relu_grad(g: &mut Graph, label: &str, y: TensorId, dy: TensorId) -> Result<TensorId> {
    let shape = crate::ops::relu_grad::f32_maps(g, label, &[y, dy])?;
    let out = g.tensor(label, &shape)?;
    let len = shape.iter().product::<usize>();
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "relu_grad",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params {
            len: len as u32,
            _pad: [0; 3],
        })
        .to_vec(),
        bindings: vec![y.into(), dy.into(), out.into()],
        workgroups: dispatch_1d(len, WG),
        flops: 0,
    });
    Ok(out)
}

/// The common shape of `ids`, or an error naming `label` and the tensor that is not f32 or differs in
/// shape from the first (the backward ops take f32 tensors of matching shapes).
pub fn f32_maps(g: &Graph, label: &str, ids: &[TensorId]) -> Result<Vec<usize>> {
    let shape = g.shape(ids[0]).to_vec();
    for &t in ids {
        if g.dtype(t) != crate::gpu::DType::F32 {
            return Err(crate::Error::shape(
                label,
                format!(
                    "the backward pass is f32: '{}' is {:?}",
                    g.info(t).name,
                    g.dtype(t)
                ),
            ));
        }
        if g.shape(t) != shape.as_slice() {
            return Err(crate::Error::shape(
                label,
                format!(
                    "'{}' has shape {:?}, expected {shape:?} (the shape of '{}')",
                    g.info(t).name,
                    g.shape(t),
                    g.info(ids[0]).name
                ),
            ));
        }
    }
    Ok(shape)
}
