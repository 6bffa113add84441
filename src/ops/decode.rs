//! Box decoding of one detection level (SSH module or FPN level) into 16-float rows, for both box conventions.
//!
//! Inputs per level: `scores [N, A, H, W]` (face probability), `bbox [N, 4A, H, W]` (channel 4a + j, j = dx, dy, dw, dh),
//! optional `landmarks [N, 10A, H, W]` (channel 10a + j, Ssd only). Output: rows `[N, R, 16]`, each
//! `[x1, y1, x2, y2, lx0, ly0, …, lx4, ly4, module, score]` in original-image pixels (landmarks 0 when absent);
//! the level fills rows `row_offset + (y·W + x)·A + a`. Anchors are computed in the shader from the row index.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

/// Most anchors per cell the shader's `Params.sizes` holds.
pub const MAX_ANCHORS: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub anchors: u32,
    pub h: u32,
    pub w: u32,
    pub stride: u32,
    pub rows: u32,
    pub row_offset: u32,
    pub count: u32,
    pub module: f32,
    pub in_w: f32,
    pub in_h: f32,
    pub scale: f32,
    pub var0: f32,
    pub var1: f32,
    /// First row (y) of the level that the heads hold (row strips); rows of the level are `(y, x, a)`, so a strip's
    /// anchors are consecutive rows from `row_offset`.
    pub y0: u32,
    pub _pad: u32,
    /// Per anchor: Ssd min size or Rcnn scale; unused entries 0.
    pub sizes: [[f32; 4]; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 96);

pub static SHADER: Shader = crate::shader!("decode", Params);
pub static SHADER_F16: Shader = crate::shader_f16!("decode", Params);

/// The two box conventions of the supported networks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BoxCoding {
    /// retinaface-mnv2 (docs/spec/retinaface-mnv2.md §6–7): priors [cx, cy, w, h] = [((x+0.5)·s)/Wp, ((y+0.5)·s)/Hp, m_a/Wp, m_a/Hp]
    /// normalised by the padded input size; `c = p.c + d[0:2]·v0·p.wh`; `wh = p.wh·exp(d[2:4]·v1)`; landmarks p.c + lm·v0·p.wh;
    /// then multiplied by Wp (x) and Hp (y) to pixels. No clipping.
    Ssd { variances: [f32; 2] },
    /// ssh-vgg16 (docs/spec/ssh-vgg16.md §4–5): py-faster-rcnn anchors (base 16, centre 7.5 + stride·x), "+1" widths, raw deltas,
    /// clipped to [0, W'−1] × [0, H'−1] of the resized input, then divided by the resize factor s.
    /// R's retry that replaces deltas > 50 by 5 after an exp overflow is not reproduced: an overflowed box is clipped.
    Rcnn,
}

/// One detection level's head outputs and anchor geometry.
#[derive(Clone, Debug)]
pub struct Level {
    /// `[N, A, H, W]` face probability (output of softmax2).
    pub scores: TensorId,
    /// `[N, 4A, H, W]` raw deltas, channel 4a + j.
    pub bbox: TensorId,
    /// `[N, 10A, H, W]`, channel 10a + j (Ssd only).
    pub landmarks: Option<TensorId>,
    /// 8, 16, 32.
    pub stride: usize,
    /// Per anchor a: Ssd min sizes (16, 32 / 64, 128 / 256, 512); Rcnn scales (1, 2 / 4, 8 / 16, 32).
    pub anchor_sizes: Vec<f32>,
    /// Written to column 14 of every row (detection module / FPN level).
    pub module: u32,
}

/// Geometry of one image of the batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeImage {
    /// Network input size (H, W): Ssd: padded (Hp, Wp); Rcnn: resized (H', W') for clipping.
    pub input_hw: [usize; 2],
    /// Rcnn: divide by s after clipping; Ssd: 1.0 (coordinates are divided by it too).
    pub scale: f32,
}

/// Decodes every anchor of `level` for every image of the batch into `rows[n, row_offset + …]` (`rows [N, R, 16]`).
/// `images[n]` gives image n's geometry (batch images may differ in size; Rcnn clipping uses each image's own size).
/// Writes only this level's rows: the levels together must cover `R`, or the caller clears `rows` with `ops::fill`.
pub fn decode(
    g: &mut Graph,
    label: &str,
    level: &Level,
    coding: &BoxCoding,
    images: &[DecodeImage],
    rows: TensorId,
    row_offset: usize,
) -> Result<()> {
    decode_rows(g, label, level, coding, images, rows, row_offset, 0)
}

/// [`decode`] of heads holding rows `y0..` of the level (a row strip), into the rows of its anchors from
/// `row_offset` (the level's offset plus y0·W·A).
#[allow(clippy::too_many_arguments)]
pub fn decode_rows(
    g: &mut Graph,
    label: &str,
    level: &Level,
    coding: &BoxCoding,
    images: &[DecodeImage],
    rows: TensorId,
    row_offset: usize,
    y0: usize,
) -> Result<()> {
    let err = |msg: String| Error::shape(label, msg);
    let name = |g: &Graph, t: TensorId| g.info(t).name.clone();
    let [n, a, h, w] = g.nchw(label, level.scores)?;
    let a_sizes = level.anchor_sizes.len();
    if a != a_sizes || a == 0 || a > MAX_ANCHORS {
        return Err(err(format!(
            "scores '{}' {:?} has {a} anchor channels, anchor_sizes lists {a_sizes}; both must be equal and 1..={MAX_ANCHORS}",
            name(g, level.scores),
            g.shape(level.scores)
        )));
    }
    let check = |g: &Graph, t: TensorId, what: &str, k: usize| -> Result<()> {
        let s = g.nchw(label, t)?;
        if s != [n, k * a, h, w] {
            return Err(err(format!(
                "{what} '{}' is {s:?}, expected [{n}, {} ({k}·A, A = {a}), {h}, {w}] to match scores",
                name(g, t),
                k * a
            )));
        }
        Ok(())
    };
    check(g, level.bbox, "bbox", 4)?;
    if let Some(l) = level.landmarks {
        if *coding == BoxCoding::Rcnn {
            return Err(err(format!(
                "landmarks '{}' given, but the Rcnn box coding has no landmark convention",
                name(g, l)
            )));
        }
        check(g, l, "landmarks", 10)?;
        g.same_dtype(label, &[level.bbox, l])?;
    }
    if g.dtype(level.scores) != crate::gpu::DType::F32 {
        return Err(err(format!(
            "scores '{}' must be f32 (softmax output), found {:?}",
            name(g, level.scores),
            g.dtype(level.scores)
        )));
    }
    if level.stride == 0 {
        return Err(err("stride must be at least 1".into()));
    }
    if let Some(bad) = level
        .anchor_sizes
        .iter()
        .find(|s| !(s.is_finite() && **s > 0.0))
    {
        return Err(err(format!("anchor size {bad} must be finite and > 0")));
    }
    if images.len() != n {
        return Err(err(format!(
            "{} image geometries given for a batch of {n} (scores '{}' {:?})",
            images.len(),
            name(g, level.scores),
            g.shape(level.scores)
        )));
    }
    for (i, im) in images.iter().enumerate() {
        if im.input_hw.contains(&0) || !(im.scale.is_finite() && im.scale > 0.0) {
            return Err(err(format!(
                "image {i}: input size {:?} must be non-zero and scale {} finite and > 0",
                im.input_hw, im.scale
            )));
        }
    }
    let count = h * w * a;
    let rs = g.shape(rows).to_vec();
    if rs.len() != 3 || rs[0] != n || rs[2] != 16 || rs[1] < row_offset + count {
        return Err(err(format!(
            "rows '{}' is {rs:?}, expected [{n}, R ≥ {} (row_offset {row_offset} + {h}·{w}·{a}), 16]",
            name(g, rows),
            row_offset + count
        )));
    }
    // The shader writes rows as f32 whatever the maps are (NMS and readback read them so): an f16 rows
    // tensor would get f32 words in half the bytes it holds.
    if g.dtype(rows) != crate::gpu::DType::F32 {
        return Err(err(format!(
            "rows '{}' must be f32 (decode writes f32 rows), found {:?}",
            name(g, rows),
            g.dtype(rows)
        )));
    }
    let (code, variances) = match coding {
        BoxCoding::Ssd { variances } => (0.0, *variances),
        BoxCoding::Rcnn => (1.0, [0.0, 0.0]),
    };
    let mut sizes = [[0.0f32; 4]; 2];
    for (k, &s) in level.anchor_sizes.iter().enumerate() {
        sizes[k / 4][k % 4] = s;
    }
    // One step per image: each carries its own geometry in Params, so batches of mixed sizes need no extra buffer.
    for (i, im) in images.iter().enumerate() {
        let params = Params {
            n: i as u32,
            anchors: a as u32,
            h: h as u32,
            w: w as u32,
            stride: level.stride as u32,
            rows: rs[1] as u32,
            row_offset: row_offset as u32,
            count: count as u32,
            module: level.module as f32,
            in_w: im.input_hw[1] as f32,
            in_h: im.input_hw[0] as f32,
            scale: im.scale,
            var0: variances[0],
            var1: variances[1],
            y0: y0 as u32,
            _pad: 0,
            sizes,
        };
        g.push(StepDesc {
            label: if n == 1 {
                label.to_string()
            } else {
                format!("{label}[{i}]")
            },
            shader: crate::ops::variant(g.dtype(level.bbox), &SHADER, &SHADER_F16),
            entry: "decode",
            constants: vec![
                ("WG", WG as f64),
                ("CODING", code),
                ("LANDMARKS", level.landmarks.is_some() as u32 as f64),
            ],
            params: bytemuck::bytes_of(&params).to_vec(),
            bindings: vec![
                level.scores.into(),
                level.bbox.into(),
                // A placeholder keeps the bind group layout fixed; LANDMARKS = 0 never reads it.
                level.landmarks.unwrap_or(level.bbox).into(),
                rows.into(),
            ],
            workgroups: dispatch_1d(count, WG),
            flops: 0,
        });
    }
    Ok(())
}
