//! Per-module anchor assignment of SSH training on the GPU (`shaders/anchor_targets.wgsl`; CPU reference
//! [`crate::train::targets::anchor_targets`]), f32, batch of one.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::model::anchors::rcnn_base_anchors;
use crate::ops::Shader;
use crate::train::targets::AnchorGrid;

/// Anchors per cell the shader supports (SSH has 2).
pub const MAX_ANCHORS: usize = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub map_w: u32,
    pub map_h: u32,
    pub num_anchors: u32,
    pub num_gt: u32,
    pub stride: u32,
    pub border: f32,
    pub img_w: f32,
    pub img_h: f32,
    pub base: [[f32; 4]; MAX_ANCHORS],
}
const _: () = assert!(std::mem::size_of::<Params>() == 64);

pub static SHADER: Shader = crate::shader!("anchor_targets", Params);

/// Output tensors of [`anchor_targets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnchorTargets {
    /// `[1, A, H, W]`: 1, 0 or −1.
    pub labels: TensorId,
    /// `[1, 4A, H, W]`.
    pub bbox_targets: TensorId,
    /// `[1, 4A, H, W]`.
    pub inside_weights: TensorId,
}

/// Labels, bbox targets and inside weights of the anchors of `grid` against the first `num_gt` rows of `gt`
/// (f32 `[G, 4]` `[x1, y1, x2, y2]`, `num_gt ≤ G`; with no faces pass any `[1, 4]` tensor and `num_gt = 0`).
pub fn anchor_targets(
    g: &mut Graph,
    label: &str,
    gt: TensorId,
    num_gt: usize,
    grid: &AnchorGrid,
) -> Result<AnchorTargets> {
    let shape = g.shape(gt).to_vec();
    if g.dtype(gt) != crate::gpu::DType::F32 || shape.len() != 2 || shape[1] != 4 {
        return Err(Error::shape(
            label,
            format!("GT boxes must be f32 [G, 4], found {shape:?}"),
        ));
    }
    if num_gt > shape[0] {
        return Err(Error::shape(
            label,
            format!(
                "num_gt {num_gt} exceeds the {} rows of the GT tensor",
                shape[0]
            ),
        ));
    }
    let a_n = grid.scales.len();
    let [h, w] = grid.map_hw;
    if a_n == 0 || a_n > MAX_ANCHORS || h == 0 || w == 0 {
        return Err(Error::shape(
            label,
            format!("{a_n} anchors (1..={MAX_ANCHORS}) on a {h}x{w} map"),
        ));
    }
    let mut base = [[0.0f32; 4]; MAX_ANCHORS];
    base[..a_n].copy_from_slice(&rcnn_base_anchors(grid.scales));
    let params = Params {
        map_w: w as u32,
        map_h: h as u32,
        num_anchors: a_n as u32,
        num_gt: num_gt as u32,
        stride: grid.stride as u32,
        border: grid.border,
        img_w: grid.image_hw[1] as f32,
        img_h: grid.image_hw[0] as f32,
        base,
    };
    let labels = g.tensor(&format!("{label}.labels"), &[1, a_n, h, w])?;
    let bbox_targets = g.tensor(&format!("{label}.bbox_targets"), &[1, 4 * a_n, h, w])?;
    let inside_weights = g.tensor(&format!("{label}.inside_weights"), &[1, 4 * a_n, h, w])?;
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "anchor_targets",
        constants: vec![],
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![
            gt.into(),
            labels.into(),
            bbox_targets.into(),
            inside_weights.into(),
        ],
        workgroups: dispatch_1d(a_n * h * w, 256),
        flops: 0,
    });
    Ok(AnchorTargets {
        labels,
        bbox_targets,
        inside_weights,
    })
}
