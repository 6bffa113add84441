//! Reference of `shaders/preprocess.wgsl`: OpenCV `INTER_LINEAR` on the mean-subtracted float image,
//! written after `resizeGeneric_` (see the notes in `ops::preprocess`), with the source coordinate
//! evaluated in f64 and rounded to f32 as OpenCV does.

use crate::ops::preprocess::Preprocess;
use crate::reference::CpuTensor;

/// OpenCV's source coordinate of destination index `d`: `(float)((d + 0.5) * (1./s) - 0.5)`.
pub fn opencv_src_coord(d: usize, scale: f64) -> f32 {
    ((d as f64 + 0.5) * (1.0 / scale) - 0.5) as f32
}

/// The preprocessed image `[1, 3, Hc, Wc]`: resized to `p.resized_hw` at the top left, `p.pad_value` elsewhere.
pub fn preprocess(rgb: &[u8], p: &Preprocess, canvas_hw: [usize; 2]) -> CpuTensor {
    preprocess_with_coords(rgb, p, canvas_hw, &|d| opencv_src_coord(d, p.scale))
}

/// Two taps along an axis of length `n` from the source coordinate `f`: (index0, index1, w0, w1).
/// `reset_at_edges` is OpenCV's column rule (clamp with the fraction reset to 0); rows only clip indices.
fn taps(f: f32, n: usize, reset_at_edges: bool) -> (usize, usize, f32, f32) {
    let fl = f.floor();
    let mut s = fl as i64;
    let mut f = f - fl;
    let last = n as i64 - 1;
    if reset_at_edges {
        if s < 0 {
            s = 0;
            f = 0.0;
        }
        if s >= last {
            s = last;
            f = 0.0;
        }
    }
    let clip = |v: i64| v.clamp(0, last) as usize;
    (clip(s), clip(s + 1), 1.0 - f, f)
}

/// As [`preprocess`] with a caller-chosen source coordinate per destination index (the same map for rows
/// and columns), so tests can show that a less exact coordinate is caught.
pub fn preprocess_with_coords(
    rgb: &[u8],
    p: &Preprocess,
    canvas_hw: [usize; 2],
    coord: &dyn Fn(usize) -> f32,
) -> CpuTensor {
    let [h, w] = p.src_hw;
    let [rh, rw] = p.resized_hw;
    let [hc, wc] = canvas_hw;
    assert_eq!(rgb.len(), h * w * 3, "reference preprocess: {h}×{w} RGB8");
    assert!(
        rh <= hc && rw <= wc,
        "reference preprocess: {rh}×{rw} in {hc}×{wc}"
    );
    let mut out = CpuTensor::new(&[1, 3, hc, wc], vec![p.pad_value; 3 * hc * wc]);
    let src_ch = |c: usize| if p.bgr { 2 - c } else { c };
    let value = |y: usize, x: usize, c: usize| {
        (rgb[(y * w + x) * 3 + src_ch(c)] as f32 - p.mean[c]) * p.scale_mul[c]
    };
    for c in 0..3 {
        for y in 0..rh {
            for x in 0..rw {
                let v = if p.resized_hw == p.src_hw {
                    value(y, x, c)
                } else {
                    let (y0, y1, b0, b1) = taps(coord(y), h, false);
                    let (x0, x1, a0, a1) = taps(coord(x), w, true);
                    let h0 = value(y0, x0, c) * a0 + value(y0, x1, c) * a1;
                    let h1 = value(y1, x0, c) * a0 + value(y1, x1, c) * a1;
                    h0 * b0 + h1 * b1
                };
                out.data[(c * hc + y) * wc + x] = v;
            }
        }
    }
    out
}
