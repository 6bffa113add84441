//! `--crops`: one image per face, either the box widened by a margin, or (`--align 112`) the face warped by the
//! 5-point similarity transform onto the ArcFace template, as insightface's `norm_crop` feeds recognition models.

use image::{imageops, Rgb, RgbImage};
use sshface::Face;

/// The ArcFace landmark template for 112×112 crops (insightface `face_align.arcface_dst`).
pub const ARCFACE_112: [[f64; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// The box widened by `margin` times its width (height) on the left and right (top and bottom), rounded outwards
/// and clipped to the image; `None` when nothing of it lies inside.
pub fn margin_box(bbox: [f32; 4], margin: f32, w: u32, h: u32) -> Option<[u32; 4]> {
    let [x1, y1, x2, y2] = bbox;
    let (mx, my) = ((x2 - x1) * margin, (y2 - y1) * margin);
    let cx = |v: f32| v.clamp(0.0, w as f32) as u32;
    let cy = |v: f32| v.clamp(0.0, h as f32) as u32;
    let b = [
        cx((x1 - mx).floor()),
        cy((y1 - my).floor()),
        cx((x2 + mx).ceil()),
        cy((y2 + my).ceil()),
    ];
    (b[2] > b[0] && b[3] > b[1]).then_some(b)
}

/// The crop of `face` with `margin`.
pub fn crop(img: &RgbImage, face: &Face, margin: f32) -> Option<RgbImage> {
    let [x1, y1, x2, y2] = margin_box(face.bbox, margin, img.width(), img.height())?;
    Some(imageops::crop_imm(img, x1, y1, x2 - x1, y2 - y1).to_image())
}

/// A 2×3 affine map `[[a, -b, tx], [b, a, ty]]`: rotation, uniform scale and translation.
pub type Similarity = [[f64; 3]; 2];

/// Least-squares similarity mapping `src` onto `dst` (Umeyama 1991 without reflection; in 2-D its closed form is
/// the complex regression dst − d̄ = z·(src − s̄)).
pub fn umeyama(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Similarity {
    let n = src.len() as f64;
    let mean = |p: &[[f64; 2]]| {
        let s = p.iter().fold([0.0, 0.0], |a, q| [a[0] + q[0], a[1] + q[1]]);
        [s[0] / n, s[1] / n]
    };
    let (ms, md) = (mean(src), mean(dst));
    let (mut re, mut im, mut norm) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (s[0] - ms[0], s[1] - ms[1]);
        let (dx, dy) = (d[0] - md[0], d[1] - md[1]);
        // conj(s)·d
        re += sx * dx + sy * dy;
        im += sx * dy - sy * dx;
        norm += sx * sx + sy * sy;
    }
    let (a, b) = if norm > 0.0 {
        (re / norm, im / norm)
    } else {
        (1.0, 0.0)
    };
    let tx = md[0] - (a * ms[0] - b * ms[1]);
    let ty = md[1] - (b * ms[0] + a * ms[1]);
    [[a, -b, tx], [b, a, ty]]
}

#[cfg(test)]
fn apply(m: &Similarity, p: [f64; 2]) -> [f64; 2] {
    [
        m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
        m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
    ]
}

/// Bilinear sample at (x, y) with black outside the image, as `cv2.warpAffine`'s default border.
fn sample(img: &RgbImage, x: f64, y: f64) -> Rgb<u8> {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let px = |xi: i64, yi: i64| -> [f64; 3] {
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            [0.0; 3]
        } else {
            img.get_pixel(xi as u32, yi as u32).0.map(f64::from)
        }
    };
    let (xi, yi) = (x0 as i64, y0 as i64);
    let (a, b, c, d) = (
        px(xi, yi),
        px(xi + 1, yi),
        px(xi, yi + 1),
        px(xi + 1, yi + 1),
    );
    Rgb(std::array::from_fn(|k| {
        let top = a[k] * (1.0 - fx) + b[k] * fx;
        let bot = c[k] * (1.0 - fx) + d[k] * fx;
        (top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8
    }))
}

/// The `size`×`size` crop of a face with landmarks, aligned onto the ArcFace template scaled by size/112
/// (insightface `norm_crop`: `estimate_norm` + `cv2.warpAffine`, pixel (x, y) of the crop shows source point
/// M⁻¹(x, y)).
pub fn align(img: &RgbImage, landmarks: &[[f32; 2]; 5], size: u32) -> RgbImage {
    let s = size as f64 / 112.0;
    let dst: Vec<[f64; 2]> = ARCFACE_112.iter().map(|p| [p[0] * s, p[1] * s]).collect();
    let src: Vec<[f64; 2]> = landmarks
        .iter()
        .map(|p| [p[0] as f64, p[1] as f64])
        .collect();
    let m = umeyama(&src, &dst);
    // Inverse of a similarity: z⁻¹ = conj(z)/|z|².
    let (a, b) = (m[0][0], m[1][0]);
    let n = (a * a + b * b).max(f64::MIN_POSITIVE);
    let (ia, ib) = (a / n, -b / n);
    let (tx, ty) = (m[0][2], m[1][2]);
    RgbImage::from_fn(size, size, |x, y| {
        let (u, v) = (x as f64 - tx, y as f64 - ty);
        sample(img, ia * u - ib * v, ib * u + ia * v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umeyama_recovers_an_exact_similarity() {
        let (a, b, tx, ty) = (1.7 * 0.3f64.cos(), 1.7 * 0.3f64.sin(), 40.0, -12.0);
        let m0 = [[a, -b, tx], [b, a, ty]];
        let src: Vec<[f64; 2]> = ARCFACE_112.to_vec();
        let dst: Vec<[f64; 2]> = src.iter().map(|&p| apply(&m0, p)).collect();
        let m = umeyama(&src, &dst);
        for r in 0..2 {
            for c in 0..3 {
                assert!((m[r][c] - m0[r][c]).abs() < 1e-9, "{m:?} vs {m0:?}");
            }
        }
    }

    #[test]
    fn margin_box_widens_and_clips() {
        assert_eq!(
            margin_box([10.0, 20.0, 30.0, 60.0], 0.2, 100, 100),
            Some([6, 12, 34, 68])
        );
        assert_eq!(
            margin_box([-5.0, 90.0, 30.0, 120.0], 0.2, 100, 100),
            Some([0, 84, 37, 100])
        );
        assert_eq!(margin_box([200.0, 0.0, 220.0, 10.0], 0.0, 100, 100), None);
    }

    /// Five coloured dots placed by a rotated, scaled template must land within 1 px of the template in the crop.
    #[test]
    fn aligned_landmarks_land_on_the_template() {
        let colours = [
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [255, 255, 0],
            [0, 255, 255],
        ];
        let t = 0.35f64;
        let (a, b) = (2.3 * t.cos(), 2.3 * t.sin());
        let m0 = [[a, -b, 150.0], [b, a, 60.0]];
        let lm: Vec<[f64; 2]> = ARCFACE_112.iter().map(|&p| apply(&m0, p)).collect();
        let mut img = RgbImage::new(500, 450);
        for (p, c) in lm.iter().zip(colours) {
            for dy in -6i64..=6 {
                for dx in -6i64..=6 {
                    if dx * dx + dy * dy <= 36 {
                        let (x, y) = (p[0].round() as i64 + dx, p[1].round() as i64 + dy);
                        img.put_pixel(x as u32, y as u32, Rgb(c));
                    }
                }
            }
        }
        let lm32: [[f32; 2]; 5] = std::array::from_fn(|k| [lm[k][0] as f32, lm[k][1] as f32]);
        let out = align(&img, &lm32, 112);
        assert_eq!(out.dimensions(), (112, 112));
        for (k, c) in colours.iter().enumerate() {
            // Centroid of the pixels closest to this dot's colour.
            let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
            for (x, y, p) in out.enumerate_pixels() {
                let d: i32 = (0..3).map(|i| (p.0[i] as i32 - c[i] as i32).abs()).sum();
                if d < 60 {
                    sx += x as f64;
                    sy += y as f64;
                    n += 1.0;
                }
            }
            assert!(n > 5.0, "dot {k} missing from the crop");
            let (cx, cy) = (sx / n, sy / n);
            let [tx, ty] = ARCFACE_112[k];
            let d = ((cx - tx).powi(2) + (cy - ty).powi(2)).sqrt();
            assert!(
                d <= 1.0,
                "landmark {k} at ({cx:.2}, {cy:.2}), template ({tx}, {ty}): {d:.2} px"
            );
        }
    }
}
