//! Face anonymisation on the GPU: packed RGB8 `[ceil(H·W·3/4)]` u32 + kept detection rows `[N, capacity, 16]` +
//! counts `[N, 2]` → packed RGB8 of the same size, every pixel inside a detection's ellipse (box scaled by
//! `mask_scale` about its centre) replaced by a Gaussian blur, pixelation or solid black, all others copied.
//! It reads the image the detector already uploaded and the rows NMS kept, in the detection's own submit.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

/// What replaces a face.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BlurMode {
    /// A Gaussian of σ = a tenth of the mask's longer side (13×13 taps over ±2σ).
    #[default]
    Gaussian,
    /// About 12 cells across the mask (at least 4 px), each the colour of its centre pixel.
    Pixelate,
    /// Black.
    Solid,
}

impl BlurMode {
    /// The shader's `MODE` override constant.
    pub fn code(self) -> u32 {
        match self {
            BlurMode::Gaussian => 0,
            BlurMode::Pixelate => 1,
            BlurMode::Solid => 2,
        }
    }
}

/// How faces are anonymised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blur {
    pub mode: BlurMode,
    /// The ellipse's axes are the box's sides times this (1.3 covers hair and chin).
    pub mask_scale: f32,
}

impl Default for Blur {
    fn default() -> Self {
        Blur {
            mode: BlurMode::Gaussian,
            mask_scale: 1.3,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub h: u32,
    pub w: u32,
    pub words: u32,
    pub image: u32,
    pub capacity: u32,
    pub mask_scale: f32,
    pub _pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

pub static SHADER: Shader = crate::shader!("blur", Params);

/// Appends a step writing `out` (packed RGB8 of the `hw` image `src`) with the faces of image `n` of
/// `rows` [N, capacity, 16] / `counts` [N, 2] anonymised.
#[allow(clippy::too_many_arguments)]
pub fn blur(
    g: &mut Graph,
    label: &str,
    src: TensorId,
    hw: [usize; 2],
    rows: TensorId,
    counts: TensorId,
    n: usize,
    out: TensorId,
    b: &Blur,
) -> Result<()> {
    let [h, w] = hw;
    let words = (h * w * 3).div_ceil(4);
    for t in [src, out] {
        if g.info(t).len() != words {
            return Err(Error::shape(
                label,
                format!(
                    "'{}' {:?} holds {} u32 words; a {h}×{w} RGB8 image needs ceil(H·W·3/4) = {words}",
                    g.info(t).name,
                    g.shape(t),
                    g.info(t).len()
                ),
            ));
        }
    }
    let rs = g.shape(rows).to_vec();
    if rs.len() != 3 || rs[2] != 16 || n >= rs[0] || g.info(counts).len() != 2 * rs[0] {
        return Err(Error::shape(
            label,
            format!(
                "rows must be [N, capacity, 16] with counts [N, 2] and image {n} < N; found rows {rs:?}, counts {:?}",
                g.shape(counts)
            ),
        ));
    }
    if !(b.mask_scale.is_finite() && b.mask_scale > 0.0) {
        return Err(Error::Config(format!(
            "{label}: mask scale {} must be a positive number",
            b.mask_scale
        )));
    }
    let params = Params {
        h: h as u32,
        w: w as u32,
        words: words as u32,
        image: n as u32,
        capacity: rs[1] as u32,
        mask_scale: b.mask_scale,
        _pad: [0; 2],
    };
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "blur",
        constants: vec![("WG", WG as f64), ("MODE", b.mode.code() as f64)],
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![src.into(), rows.into(), counts.into(), out.into()],
        workgroups: dispatch_1d(words, WG),
        flops: 0,
    });
    Ok(())
}
