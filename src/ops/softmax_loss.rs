//! Two-class softmax cross-entropy with an ignore label (Caffe's SoftmaxWithLoss, `ignore_label: -1`,
//! normalization VALID) and its logits gradient, f32.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::softmax2::{anchor_shape, ClassLayout};
use crate::ops::Shader;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub a: u32,
    pub hw: u32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

pub static SHADER: Shader = crate::shader!("softmax_loss", Params);

/// Loss and gradient tensors of [`softmax_loss`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftmaxLoss {
    /// `[2]`: the loss `Σ −log max(p[label], FLT_MIN) / max(1, count)` and `count`, the number of anchors
    /// whose label is not −1.
    pub stats: TensorId,
    /// `[N, 2A, H, W]`: `(p − onehot(label)) / max(1, count)` per anchor, 0 for ignored anchors.
    pub grad: TensorId,
}

/// Loss and logits gradient of logits `[N, 2A, H, W]` (class pairs laid out as `layout`) against `labels`
/// `[N, A, H, W]`: f32 values −1 (ignored), 0 (background) or 1 (face). Any other label value makes the
/// loss and that anchor's gradient NaN.
pub fn softmax_loss(
    g: &mut Graph,
    label: &str,
    logits: TensorId,
    labels: TensorId,
    layout: ClassLayout,
) -> Result<SoftmaxLoss> {
    let [n, a, h, w] = anchor_shape(g, "softmax loss", label, logits)?;
    let c2 = 2 * a;
    if g.shape(labels) != [n, a, h, w] {
        return Err(Error::shape(
            label,
            format!(
                "labels '{}' have shape {:?}, expected one per anchor: {:?} for logits {:?}",
                g.info(labels).name,
                g.shape(labels),
                [n, a, h, w],
                [n, c2, h, w]
            ),
        ));
    }
    crate::ops::relu_grad::f32_maps(g, label, &[logits])?;
    crate::ops::relu_grad::f32_maps(g, label, &[labels])?;
    let stats = g.tensor(&format!("{label}.loss"), &[2])?;
    let grad = g.tensor(&format!("{label}.grad"), &[n, c2, h, w])?;
    let len = n * a * h * w;
    let params = bytemuck::bytes_of(&Params {
        len: len as u32,
        a: a as u32,
        hw: (h * w) as u32,
        _pad: 0,
    })
    .to_vec();
    let code = match layout {
        ClassLayout::ClassMajor => 0.0,
        ClassLayout::Interleaved => 1.0,
    };
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "softmax_loss",
        constants: vec![("LAYOUT", code)],
        params: params.clone(),
        bindings: vec![logits.into(), labels.into(), stats.into()],
        workgroups: [1, 1, 1],
        flops: 0,
    });
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "softmax_loss_grad",
        constants: vec![("LAYOUT", code)],
        params,
        bindings: vec![logits.into(), labels.into(), stats.into(), grad.into()],
        workgroups: dispatch_1d(len, 256),
        flops: 0,
    });
    Ok(SoftmaxLoss { stats, grad })
}
