//! Per-module anchor assignment of SSH training (py-faster-rcnn `anchor_target_layer` as SSH configures it), the
//! CPU reference of `shaders/anchor_targets.wgsl`.
//!
//! IoU with the +1 convention (width = x2 − x1 + 1); label 1 if the max IoU over the GT boxes is ≥ 0.5, 0 if it is
//! < 0.3, −1 otherwise; no forced best anchor per face. Anchors outside the image by more than the module's allowed
//! border (0 for M1 and M2, 512 for M3) are ignored (−1). Positives get the Fast R-CNN `bbox_transform` targets
//! against their best GT (the first of equal IoUs) and inside weights 1; every other anchor gets 0 and 0.

use crate::model::anchors::rcnn_base_anchors;
use crate::model::ssh_vgg16::MODULES;

/// IoU at or above which an anchor is positive.
pub const POS_IOU: f32 = 0.5;
/// IoU below which an anchor is negative.
pub const NEG_IOU: f32 = 0.3;

/// Allowed border of module `m` (0-based: M1 = 0): 0 for M1 and M2, 512 for M3.
pub fn allowed_border(module: usize) -> f32 {
    if module == 2 {
        512.0
    } else {
        0.0
    }
}

/// GT faces `[x, y, w, h]` (WIDER FACE) to boxes `[x1, y1, x2, y2] = [x, y, x + w, y + h]`, each coordinate clamped
/// to the image (`0..=W−1`, `0..=H−1`); boxes whose clamped x2 − x1 or y2 − y1 is below 1 (or not finite) are dropped.
pub fn gt_boxes(faces_xywh: &[[f32; 4]], image_hw: [usize; 2]) -> Vec<[f32; 4]> {
    let (hi_x, hi_y) = (image_hw[1] as f32 - 1.0, image_hw[0] as f32 - 1.0);
    faces_xywh
        .iter()
        .filter_map(|&[x, y, w, h]| {
            let b = [
                x.clamp(0.0, hi_x),
                y.clamp(0.0, hi_y),
                (x + w).clamp(0.0, hi_x),
                (y + h).clamp(0.0, hi_y),
            ];
            let keep = b.iter().all(|v| v.is_finite()) && b[2] - b[0] >= 1.0 && b[3] - b[1] >= 1.0;
            keep.then_some(b)
        })
        .collect()
}

/// IoU of two `[x1, y1, x2, y2]` boxes with +1 widths, in f32 in the order the shader computes it.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = a[2].min(b[2]) - a[0].max(b[0]) + 1.0;
    let ih = a[3].min(b[3]) - a[1].max(b[1]) + 1.0;
    if iw <= 0.0 || ih <= 0.0 {
        return 0.0;
    }
    let inter = iw * ih;
    let aa = (a[2] - a[0] + 1.0) * (a[3] - a[1] + 1.0);
    let ba = (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    inter / (aa + ba - inter)
}

/// Fast R-CNN `bbox_transform` of `gt` against the anchor `ex`: `(dx, dy, log dw, log dh)`.
pub fn bbox_transform(ex: [f32; 4], gt: [f32; 4]) -> [f32; 4] {
    let (ew, eh) = (ex[2] - ex[0] + 1.0, ex[3] - ex[1] + 1.0);
    let (ecx, ecy) = (ex[0] + 0.5 * ew, ex[1] + 0.5 * eh);
    let (gw, gh) = (gt[2] - gt[0] + 1.0, gt[3] - gt[1] + 1.0);
    let (gcx, gcy) = (gt[0] + 0.5 * gw, gt[1] + 0.5 * gh);
    [
        (gcx - ecx) / ew,
        (gcy - ecy) / eh,
        (gw / ew).ln(),
        (gh / eh).ln(),
    ]
}

/// Geometry of one module's anchor grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnchorGrid<'a> {
    pub stride: usize,
    /// Anchor scales (base size 16), e.g. `[1, 2]` for M1.
    pub scales: &'a [f32],
    /// Feature map `[H, W]`.
    pub map_hw: [usize; 2],
    /// Network input `[H, W]` the anchors must lie in.
    pub image_hw: [usize; 2],
    pub border: f32,
}

impl<'a> AnchorGrid<'a> {
    /// Module `m` (0-based) of SSH-VGG16 on a feature map `map_hw` of an input `image_hw`.
    pub fn ssh(module: usize, map_hw: [usize; 2], image_hw: [usize; 2]) -> Self {
        let (stride, scales) = &MODULES[module];
        AnchorGrid {
            stride: *stride,
            scales,
            map_hw,
            image_hw,
            border: allowed_border(module),
        }
    }

    /// Anchor `a` of cell (x, y): the base anchor shifted by stride·(x, y) (in f64 then f32, as decode does).
    pub fn anchor(&self, a: usize, x: usize, y: usize) -> [f32; 4] {
        let b = rcnn_base_anchors(&self.scales[a..=a])[0];
        let sh = |v: f32, c: usize| (v as f64 + (self.stride * c) as f64) as f32;
        [sh(b[0], x), sh(b[1], y), sh(b[2], x), sh(b[3], y)]
    }

    /// Whether an anchor lies within the allowed border of the image.
    pub fn inside(&self, b: [f32; 4]) -> bool {
        let (w, h) = (self.image_hw[1] as f32, self.image_hw[0] as f32);
        b[0] >= -self.border
            && b[1] >= -self.border
            && b[2] < w + self.border
            && b[3] < h + self.border
    }
}

/// Training targets of one module, Caffe layout (anchor-major), batch of one.
#[derive(Clone, Debug, PartialEq)]
pub struct Targets {
    /// `[A, H, W]`: 1, 0 or −1.
    pub labels: Vec<f32>,
    /// `[4A, H, W]`: channel 4a + j is coordinate j of anchor a.
    pub bbox_targets: Vec<f32>,
    /// `[4A, H, W]`: 1 for the four channels of a positive anchor, else 0.
    pub inside_weights: Vec<f32>,
}

/// Assigns the anchors of `grid` to the GT boxes `gt` (`[x1, y1, x2, y2]`, see [`gt_boxes`]).
pub fn anchor_targets(grid: &AnchorGrid, gt: &[[f32; 4]]) -> Targets {
    let [h, w] = grid.map_hw;
    let a_n = grid.scales.len();
    let hw = h * w;
    let mut t = Targets {
        labels: vec![-1.0; a_n * hw],
        bbox_targets: vec![0.0; 4 * a_n * hw],
        inside_weights: vec![0.0; 4 * a_n * hw],
    };
    for a in 0..a_n {
        for y in 0..h {
            for x in 0..w {
                let anchor = grid.anchor(a, x, y);
                if !grid.inside(anchor) {
                    continue;
                }
                let (mut best, mut arg) = (0.0f32, usize::MAX);
                for (g, &b) in gt.iter().enumerate() {
                    let o = iou(anchor, b);
                    if arg == usize::MAX || o > best {
                        (best, arg) = (o, g);
                    }
                }
                let cell = y * w + x;
                t.labels[a * hw + cell] = if arg != usize::MAX && best >= POS_IOU {
                    let d = bbox_transform(anchor, gt[arg]);
                    for (j, &dj) in d.iter().enumerate() {
                        t.bbox_targets[(4 * a + j) * hw + cell] = dj;
                        t.inside_weights[(4 * a + j) * hw + cell] = 1.0;
                    }
                    1.0
                } else if best < NEG_IOU {
                    0.0
                } else {
                    -1.0
                };
            }
        }
    }
    t
}
