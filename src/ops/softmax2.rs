//! Two-class (background, face) softmax over the classification head's anchors.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub a: u32,
    pub hw: u32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

pub static SHADER: Shader = crate::shader!("softmax2", Params);
pub static SHADER_F16: Shader = crate::shader_f16!("softmax2", Params);

/// Where the two class logits of anchor `a` sit among the `2A` channels; passed as the `LAYOUT` override.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassLayout {
    /// SSH/Caffe: channel cls·A + a (pairs channel a with A + a)
    ClassMajor,
    /// RetinaFace: channel a·2 + cls
    Interleaved,
}

impl ClassLayout {
    /// The channels of (background, face) for anchor `a` of `num_anchors`.
    pub fn channels(self, a: usize, num_anchors: usize) -> [usize; 2] {
        match self {
            ClassLayout::ClassMajor => [a, num_anchors + a],
            ClassLayout::Interleaved => [2 * a, 2 * a + 1],
        }
    }
}

/// `[N, A, H, W]` of logits `[N, 2A, H, W]` (two classes per anchor), or an error naming `op` and the logits.
pub fn anchor_shape(g: &Graph, op: &str, label: &str, logits: TensorId) -> Result<[usize; 4]> {
    let [n, c2, h, w] = g.nchw(label, logits)?;
    if c2 % 2 != 0 {
        return Err(Error::shape(
            label,
            format!(
                "{op} needs an even channel count (2 classes × anchors), logits '{}' {:?} has {c2} channels",
                g.info(logits).name,
                g.shape(logits)
            ),
        ));
    }
    Ok([n, c2 / 2, h, w])
}

/// Two-class softmax per anchor: logits `[N, 2A, H, W]` -> face probability p[cls = 1], `[N, A, H, W]`.
pub fn softmax2(
    g: &mut Graph,
    label: &str,
    logits: TensorId,
    layout: ClassLayout,
) -> Result<TensorId> {
    let [n, a, h, w] = anchor_shape(g, "softmax2", label, logits)?;
    let out = g.tensor(label, &[n, a, h, w])?;
    let len = n * a * h * w;
    let code = match layout {
        ClassLayout::ClassMajor => 0.0,
        ClassLayout::Interleaved => 1.0,
    };
    g.push(StepDesc {
        label: label.to_string(),
        // f16 logits in, f32 probabilities out: softmax stays f32.
        shader: crate::ops::variant(g.dtype(logits), &SHADER, &SHADER_F16),
        entry: "softmax2",
        constants: vec![("WG", WG as f64), ("LAYOUT", code)],
        params: bytemuck::bytes_of(&Params {
            len: len as u32,
            a: a as u32,
            hw: (h * w) as u32,
            _pad: 0,
        })
        .to_vec(),
        bindings: vec![logits.into(), out.into()],
        workgroups: dispatch_1d(len, WG),
        flops: 0,
    });
    Ok(out)
}
