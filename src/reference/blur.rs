//! CPU version of `shaders/blur.wgsl` on an unpacked RGB8 image, with the shader's f32 arithmetic and rounding
//! (ties to even). Gaussian results may differ from the GPU's by 1 where `exp` rounds differently.

use crate::ops::blur::{Blur, BlurMode};

fn rgb_at(img: &[u8], h: usize, w: usize, x: i64, y: i64) -> [f32; 3] {
    let xc = x.clamp(0, w as i64 - 1) as usize;
    let yc = y.clamp(0, h as i64 - 1) as usize;
    let b = (yc * w + xc) * 3;
    [img[b] as f32, img[b + 1] as f32, img[b + 2] as f32]
}

/// The index of the first box (x1, y1, x2, y2) whose ellipse holds pixel (x, y).
pub fn face_at(boxes: &[[f32; 4]], mask_scale: f32, x: usize, y: usize) -> Option<usize> {
    let (fx, fy) = (x as f32, y as f32);
    boxes.iter().position(|r| {
        let a = (r[2] - r[0]) * 0.5 * mask_scale;
        let b = (r[3] - r[1]) * 0.5 * mask_scale;
        if a <= 0.0 || b <= 0.0 {
            return false;
        }
        let dx = (fx - (r[0] + r[2]) * 0.5) / a;
        let dy = (fy - (r[1] + r[3]) * 0.5) / b;
        dx * dx + dy * dy <= 1.0
    })
}

/// `img` (H·W·3 RGB8) with every face of `boxes` anonymised as the shader does.
pub fn blur(img: &[u8], hw: [usize; 2], boxes: &[[f32; 4]], b: &Blur) -> Vec<u8> {
    let [h, w] = hw;
    let mut out = img.to_vec();
    for y in 0..h {
        for x in 0..w {
            let Some(k) = face_at(boxes, b.mask_scale, x, y) else {
                continue;
            };
            let r = boxes[k];
            let side = (r[2] - r[0]).max(r[3] - r[1]) * b.mask_scale;
            let c: [f32; 3] = match b.mode {
                BlurMode::Solid => [0.0; 3],
                BlurMode::Pixelate => {
                    let cell = ((side / 12.0) as u32).max(4) as usize;
                    let cx = (x / cell) * cell + cell / 2;
                    let cy = (y / cell) * cell + cell / 2;
                    rgb_at(img, h, w, cx as i64, cy as i64)
                }
                BlurMode::Gaussian => {
                    let sigma = (side / 10.0).max(1.0);
                    let step = (sigma / 3.0).max(1.0);
                    let (mut acc, mut wsum) = ([0.0f32; 3], 0.0f32);
                    for j in -6..=6 {
                        for i in -6..=6 {
                            let (dx, dy) = (i as f32 * step, j as f32 * step);
                            let wt = (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp();
                            let p = rgb_at(
                                img,
                                h,
                                w,
                                x as i64 + dx.round_ties_even() as i64,
                                y as i64 + dy.round_ties_even() as i64,
                            );
                            for ch in 0..3 {
                                acc[ch] += wt * p[ch];
                            }
                            wsum += wt;
                        }
                    }
                    acc.map(|v| (v / wsum).round_ties_even().clamp(0.0, 255.0))
                }
            };
            for ch in 0..3 {
                out[(y * w + x) * 3 + ch] = c[ch] as u8;
            }
        }
    }
    out
}
