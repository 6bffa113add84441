//! Image preprocessing on the GPU, one step per image of a batch: packed RGB8 `[ceil(H·W·3/4)]` u32 →
//! OpenCV `INTER_LINEAR` resize of the mean-subtracted float image → channel order → `· scale_mul` →
//! image `n` of the canvas `[N, 3, Hc, Wc]`, padded bottom/right with `pad_value`.
//!
//! OpenCV semantics, read from `modules/imgproc/src/resize.cpp` (`cv::resize`, `hal::resize`,
//! `resizeGeneric_Invoker`, `HResizeLinear`, `VResizeLinear`) for a float image and `fx = fy = s`:
//! - output size `dsize = saturate_cast<int>(W·s)` (cvRound: ties to even), `inv_scale = s` as given;
//! - `dsize == ssize` → plain copy (covers s = 1.0, and any s that rounds back to the same size);
//! - `scale = 1./s` in double; per destination column `fx = (float)((dx+0.5)*scale - 0.5)`, `sx = cvFloor(fx)`,
//!   `fx -= sx`; `sx < 0` → `sx = 0, fx = 0`; `sx >= W-1` → `sx = W-1, fx = 0` (single tap); weights
//!   `(1-fx, fx)` in float; horizontal pass `S[sx]·a0 + S[sx+1]·a1` per source row;
//! - rows use the same formula but **no** edge reset: rows `sy` and `sy+1` are each clipped into `[0, H-1]`
//!   and keep `(1-fy, fy)` (equal to the reset up to one float rounding); vertical pass `h0·b0 + h1·b1`;
//! - no antialiasing for downscales. s = 0.5 exactly is routed to INTER_AREA there, which equals this
//!   bilinear result up to float rounding.
//!
//! `reference::preprocess` reproduces opencv-python-headless 5.0.0 bit for bit with `cv2.ipp.setUseIPP(False)`
//! (tests/data/opencv_resize.safetensors). With IPP on, the x86-64 wheels' default, float32 INTER_LINEAR goes
//! through IPP, whose coordinates differ slightly: up to 1.2e-2 (0..255 domain) on noise images.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

/// The per-image preprocessing of a network input.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    /// Original image H, W.
    pub src_hw: [usize; 2],
    /// Resize factor s (1.0 = no resize, skipped exactly).
    pub scale: f64,
    /// (cvRound(H·s), cvRound(W·s)); see [`resized_size`].
    pub resized_hw: [usize; 2],
    /// Output channel 0 = B (SSH/Caffe) or R (RetinaFace).
    pub bgr: bool,
    /// Per OUTPUT channel, subtracted from the 0..255 pixel BEFORE the resize.
    pub mean: [f32; 3],
    /// Per output channel multiplier after mean subtraction (1/127.5 for RetinaFace, 1 for SSH).
    pub scale_mul: [f32; 3],
    /// Value written outside the resized image, in the normalised domain (−1.0 for RetinaFace's pixel 0).
    pub pad_value: f32,
}

impl Preprocess {
    /// The Caffe BGR means of SSH (R:`SSH/configs/default_config.yml`).
    pub const CAFFE_BGR_MEAN: [f32; 3] = [102.9801, 115.9465, 122.7717];

    /// SSH: BGR, minus the Caffe means, resized by `scale`, no std scaling; padding (batches only) is 0.
    pub fn ssh(src_hw: [usize; 2], scale: f64) -> Result<Self> {
        Ok(Preprocess {
            src_hw,
            scale,
            resized_hw: resized_size(src_hw, scale)?,
            bgr: true,
            mean: Self::CAFFE_BGR_MEAN,
            scale_mul: [1.0; 3],
            pad_value: 0.0,
        })
    }

    /// RetinaFace-MobileNetV2: RGB, x/127.5 − 1, no resize, padded with −1 (pixel 0).
    pub fn retinaface(src_hw: [usize; 2]) -> Self {
        Preprocess {
            src_hw,
            scale: 1.0,
            resized_hw: src_hw,
            bgr: false,
            mean: [127.5; 3],
            scale_mul: [1.0 / 127.5; 3],
            pad_value: -1.0,
        }
    }

    /// Checks that `rgb` holds H·W·3 bytes, naming `label` and the sizes otherwise.
    pub fn check_rgb8(&self, label: &str, rgb: &[u8]) -> Result<()> {
        let [h, w] = self.src_hw;
        if rgb.len() != h * w * 3 {
            return Err(Error::shape(
                label,
                format!(
                    "pixel buffer has {} bytes, a {h}×{w} RGB8 image needs H·W·3 = {}",
                    rgb.len(),
                    h * w * 3
                ),
            ));
        }
        Ok(())
    }
}

/// cvRound(v·s) for H and W: round half to even, as OpenCV/numpy do; errors if a side becomes 0.
pub fn resized_size(src_hw: [usize; 2], scale: f64) -> Result<[usize; 2]> {
    let [h, w] = src_hw;
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::Config(format!(
            "resize scale {scale} of a {h}×{w} image must be finite and > 0"
        )));
    }
    // OpenCV computes `saturate_cast<int>(width * inv_scale_x)` in double.
    let r = |v: usize| (v as f64 * scale).round_ties_even();
    let (rh, rw) = (r(h), r(w));
    if !(rh >= 1.0 && rw >= 1.0 && rh <= i32::MAX as f64 && rw <= i32::MAX as f64) {
        return Err(Error::Config(format!(
            "resizing a {h}×{w} image by {scale} gives {rh}×{rw}; every side must be between 1 and {}",
            i32::MAX
        )));
    }
    Ok([rh as usize, rw as usize])
}

/// Packs RGB8 bytes (H·W·3, row-major) into u32 words (little-endian, 4 bytes per word, zero-padded) for upload.
pub fn pack_rgb8(rgb: &[u8]) -> Vec<u32> {
    rgb.chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(b)
        })
        .collect()
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub src_h: u32,
    pub src_w: u32,
    pub dst_h: u32,
    pub dst_w: u32,
    pub canvas_h: u32,
    pub canvas_w: u32,
    pub image: u32,
    /// 1/s = m · 2^-k.
    pub k: u32,
    pub mean: [f32; 4],
    pub mul: [f32; 4],
    /// The 53-bit significand of 1/s in 16-bit limbs, little-endian.
    pub m: [u32; 4],
    pub pad_value: f32,
    /// Row strips: `out` holds canvas rows `row0..` and `src` the packed words `word0..` of the image.
    pub row0: u32,
    pub word0: u32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 96);

/// Which part of the canvas a preprocessing step writes and which words of the packed image it holds (row strips).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanvasRows {
    /// First canvas row of `out`.
    pub row0: usize,
    /// Rows of the whole canvas.
    pub canvas_h: usize,
    /// First packed word of the image that `src` holds.
    pub word0: usize,
}

/// Source rows [lo, hi) that canvas rows [a, b) of `p` read (OpenCV's two taps per row, with a row of margin).
pub fn source_rows(p: &Preprocess, (a, b): (usize, usize)) -> (usize, usize) {
    let [h, _] = p.src_hw;
    if p.resized_hw == p.src_hw {
        return (a.min(h), b.min(h));
    }
    let f = |d: usize| (d as f64 + 0.5) / p.scale - 0.5;
    let lo = (f(a).floor() as isize - 1).clamp(0, h as isize) as usize;
    let hi = ((f(b.saturating_sub(1)).floor() as isize + 3).max(0) as usize).min(h);
    (lo.min(hi), hi)
}

pub static SHADER: Shader = crate::shader!("preprocess", Params);
pub static SHADER_F16: Shader = crate::shader_f16!("preprocess", Params);

/// 1/s as (m, k) with 1/s = m·2^-k exactly, m in [2^52, 2^53); `None` when the shader's 96-bit integers
/// cannot hold the computation (k outside 0..=90, i.e. s below 2^-53 or above 2^38).
fn inv_scale_parts(scale: f64) -> Option<([u32; 4], u32)> {
    let inv = 1.0 / scale;
    if !inv.is_normal() || inv < 0.0 {
        return None;
    }
    let bits = inv.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let k = 52 - e;
    if !(0..=90).contains(&k) {
        return None;
    }
    let limb = |i: u32| ((m >> (16 * i)) & 0xffff) as u32;
    Some(([limb(0), limb(1), limb(2), limb(3)], k as u32))
}

/// Appends a step that reads packed RGB8 `src` (a tensor of ceil(H·W·3/4) u32 words) and writes image `n` of
/// `out` [N, 3, Hc, Wc] (resized_hw must fit in Hc×Wc; the rest of image n is pad_value).
/// Other images of `out` are untouched: a batch needs one call per image to write every element.
pub fn preprocess(
    g: &mut Graph,
    label: &str,
    src: TensorId,
    out: TensorId,
    n: usize,
    p: &Preprocess,
) -> Result<()> {
    let hc = g.nchw(label, out)?[2];
    let rows = CanvasRows {
        row0: 0,
        canvas_h: hc,
        word0: 0,
    };
    preprocess_rows(g, label, src, out, n, p, rows)
}

/// [`preprocess`] of the canvas rows `rows.row0..` that `out` holds, from `src` holding the packed words
/// `rows.word0..` of the image (which must include every word those rows read).
pub fn preprocess_rows(
    g: &mut Graph,
    label: &str,
    src: TensorId,
    out: TensorId,
    n: usize,
    p: &Preprocess,
    rows: CanvasRows,
) -> Result<()> {
    let [h, w] = p.src_hw;
    if h == 0 || w == 0 {
        return Err(Error::shape(
            label,
            format!("source image is {h}×{w}; both sides must be at least 1"),
        ));
    }
    let expect = resized_size(p.src_hw, p.scale).map_err(|e| Error::shape(label, e.to_string()))?;
    if p.resized_hw != expect {
        return Err(Error::shape(
            label,
            format!(
                "resized_hw {:?} does not match cvRound({h}×{w} · {}) = {expect:?}",
                p.resized_hw, p.scale
            ),
        ));
    }
    let Some((m, k)) = inv_scale_parts(p.scale) else {
        return Err(Error::shape(
            label,
            format!("resize scale {} is outside 2^-53..2^38", p.scale),
        ));
    };
    let [nn, c, band_h, wc] = g.nchw(label, out)?;
    let hc = rows.canvas_h;
    if rows.row0 + band_h > hc {
        return Err(Error::shape(
            label,
            format!(
                "canvas rows {}..{} run past the canvas of {hc} rows",
                rows.row0,
                rows.row0 + band_h
            ),
        ));
    }
    let out_name = &g.info(out).name;
    if c != 3 {
        return Err(Error::shape(
            label,
            format!(
                "output '{out_name}' must have 3 channels, found {:?}",
                g.shape(out)
            ),
        ));
    }
    if n >= nn {
        return Err(Error::shape(
            label,
            format!(
                "image index {n} is out of range for output '{out_name}' {:?} (batch {nn})",
                g.shape(out)
            ),
        ));
    }
    let [rh, rw] = p.resized_hw;
    if rh > hc || rw > wc {
        return Err(Error::shape(
            label,
            format!(
                "resized image {rh}×{rw} (from {h}×{w} at scale {}) does not fit the canvas {hc}×{wc} of '{out_name}'",
                p.scale
            ),
        ));
    }
    let (lo, hi) = source_rows(p, (rows.row0, rows.row0 + band_h));
    let (w_lo, w_hi) = ((lo * w * 3) / 4, (hi * w * 3).div_ceil(4));
    let held = rows.word0..rows.word0 + g.info(src).len();
    let words = (h * w * 3).div_ceil(4);
    let whole = rows.word0 == 0 && rows.row0 == 0 && band_h == hc;
    let reads = rows.row0 < p.resized_hw[0];
    if !whole && reads && (lo >= hi || !held.contains(&w_lo) || w_hi > held.end) {
        return Err(Error::shape(
            label,
            format!(
                "pixel buffer '{}' holds words {held:?} of the image; canvas rows {}..{} read words {w_lo}..{w_hi}",
                g.info(src).name,
                rows.row0,
                rows.row0 + band_h
            ),
        ));
    }
    if whole && g.info(src).len() != words {
        return Err(Error::shape(
            label,
            format!(
                "pixel buffer '{}' {:?} holds {} u32 words; a {h}×{w} RGB8 image needs ceil(H·W·3/4) = {words}",
                g.info(src).name,
                g.shape(src),
                g.info(src).len()
            ),
        ));
    }
    let resize = p.resized_hw != p.src_hw;
    let ext = |a: [f32; 3]| [a[0], a[1], a[2], 0.0];
    let params = Params {
        src_h: h as u32,
        src_w: w as u32,
        dst_h: rh as u32,
        dst_w: rw as u32,
        canvas_h: band_h as u32,
        canvas_w: wc as u32,
        image: n as u32,
        k,
        mean: ext(p.mean),
        mul: ext(p.scale_mul),
        m,
        pad_value: p.pad_value,
        row0: rows.row0 as u32,
        word0: rows.word0 as u32,
        _pad: 0,
    };
    g.push(StepDesc {
        label: label.to_string(),
        shader: crate::ops::variant(g.dtype(out), &SHADER, &SHADER_F16),
        entry: "preprocess",
        constants: vec![
            ("WG", WG as f64),
            ("RESIZE", resize as u32 as f64),
            ("BGR", p.bgr as u32 as f64),
        ],
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![src.into(), out.into()],
        workgroups: dispatch_1d(band_h * wc, WG),
        flops: 0,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inv_scale_parts_reconstruct_the_double() {
        for s in [1.0, 0.37, 2.3, 1200.0 / 512.0, 1600.0 / 3000.0, 1e-3, 7.0] {
            let (m, k) = inv_scale_parts(s).unwrap();
            let mm = m
                .iter()
                .enumerate()
                .fold(0u64, |acc, (i, &l)| acc | (l as u64) << (16 * i));
            assert_eq!(mm as f64 * 2f64.powi(-(k as i32)), 1.0 / s, "s = {s}");
        }
        assert!(inv_scale_parts(f64::INFINITY).is_none());
    }

    #[test]
    fn pack_rgb8_is_little_endian_and_zero_padded() {
        assert_eq!(
            pack_rgb8(&[1, 2, 3, 4, 5, 6]),
            vec![0x0403_0201, 0x0000_0605]
        );
    }
}
