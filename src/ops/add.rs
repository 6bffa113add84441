//! Elementwise sum with a fused activation: `out = act(a + b)`, `a`, `b`, `out` of one shape (any rank).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Activation, Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub _pad: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

pub static SHADER: Shader = crate::shader!("add", Params);
pub static SHADER_F16: Shader = crate::shader_f16!("add", Params);

/// Appends `out = act(a + b)`; returns `out`, a new tensor of `a`'s shape.
pub fn add(
    g: &mut Graph,
    label: &str,
    a: TensorId,
    b: TensorId,
    act: Activation,
) -> Result<TensorId> {
    let shape = g.shape(a).to_vec();
    if g.shape(b) != shape.as_slice() {
        return Err(Error::shape(
            label,
            format!(
                "add needs equal shapes, found {:?} and {:?}",
                shape,
                g.shape(b)
            ),
        ));
    }
    let dtype = g.same_dtype(label, &[a, b])?;
    let out = g.tensor_as(label, &shape, dtype)?;
    let len = shape.iter().product::<usize>();
    let mut constants = vec![("WG", WG as f64)];
    constants.extend(act.constants());
    g.push(StepDesc {
        label: label.to_string(),
        shader: crate::ops::variant(dtype, &SHADER, &SHADER_F16),
        entry: "add",
        constants,
        params: bytemuck::bytes_of(&Params {
            len: len as u32,
            _pad: [0; 3],
        })
        .to_vec(),
        bindings: vec![a.into(), b.into(), out.into()],
        workgroups: dispatch_1d(len, WG),
        flops: len as u64,
    });
    Ok(out)
}
