//! Fills a tensor with one 32-bit pattern (zeroing counters and scratch before atomics).

use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    /// The bit pattern written to every element (`f32::to_bits` for floats).
    pub value: u32,
    pub _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

pub static SHADER: Shader = crate::shader!("fill", Params);

/// Appends a step that sets every element of `t` to the bits `value`.
pub fn fill(g: &mut Graph, label: &str, t: TensorId, value: u32) -> Result<()> {
    // One 32-bit word per element: an f16 tensor would be overrun and get no f16 value.
    if g.dtype(t) != crate::gpu::DType::F32 {
        return Err(crate::error::Error::shape(
            label,
            format!(
                "fill writes 4-byte values; '{}' is {:?}",
                g.info(t).name,
                g.dtype(t)
            ),
        ));
    }
    let len = g.info(t).len();
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "fill",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params {
            len: len as u32,
            value,
            _pad: [0; 2],
        })
        .to_vec(),
        bindings: vec![t.into()],
        workgroups: dispatch_1d(len, WG),
        flops: 0,
    });
    Ok(())
}
