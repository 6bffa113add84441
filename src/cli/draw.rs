//! `--draw`: boxes, scores and landmarks painted onto a copy of the image. Plain pixel loops and the built-in 3×5
//! font: an image-processing crate and a font file would add megabytes of build for a few rectangles.

use image::{Rgb, RgbImage};
use sshface::Face;

const BOX: Rgb<u8> = Rgb([0, 255, 0]);
const TEXT_BG: Rgb<u8> = Rgb([0, 0, 0]);
const TEXT: Rgb<u8> = Rgb([255, 255, 255]);
/// Eyes, nose, mouth corners: the colours insightface's demo uses, so pictures compare at a glance.
const LANDMARKS: [Rgb<u8>; 5] = [
    Rgb([255, 0, 0]),
    Rgb([0, 0, 255]),
    Rgb([0, 255, 0]),
    Rgb([255, 0, 255]),
    Rgb([255, 255, 0]),
];

/// Sets pixel (x, y) when it lies inside the image.
fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u64) < img.width() as u64 && (y as u64) < img.height() as u64 {
        img.put_pixel(x as u32, y as u32, c);
    }
}

fn fill(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb<u8>) {
    let x0 = x0.max(0);
    let y0 = y0.max(0);
    let x1 = x1.min(img.width() as i64);
    let y1 = y1.min(img.height() as i64);
    for y in y0..y1 {
        for x in x0..x1 {
            img.put_pixel(x as u32, y as u32, c);
        }
    }
}

/// Line thickness and glyph scale for an image: visible on large photos, not covering faces on small ones.
fn sizes(img: &RgbImage) -> (i64, i64) {
    let side = img.width().min(img.height()) as i64;
    ((side / 300).max(1), (side / 250).max(1))
}

/// Paints every face onto `img`: its box, its score above the box (inside when at the top edge), its landmarks.
pub fn draw(img: &mut RgbImage, faces: &[Face]) {
    let (t, k) = sizes(img);
    for f in faces {
        let [x1, y1, x2, y2] = f.bbox.map(|v| v.round() as i64);
        fill(img, x1, y1, x2 + 1, y1 + t, BOX);
        fill(img, x1, y2 + 1 - t, x2 + 1, y2 + 1, BOX);
        fill(img, x1, y1, x1 + t, y2 + 1, BOX);
        fill(img, x2 + 1 - t, y1, x2 + 1, y2 + 1, BOX);
        if let Some(lm) = &f.landmarks {
            let r = (t + 1).max(2);
            for (p, c) in lm.iter().zip(LANDMARKS) {
                let (cx, cy) = (p[0].round() as i64, p[1].round() as i64);
                for dy in -r..=r {
                    for dx in -r..=r {
                        if dx * dx + dy * dy <= r * r {
                            put(img, cx + dx, cy + dy, c);
                        }
                    }
                }
            }
        }
        let label = format!("{:.2}", f.score);
        let ty = if y1 - 7 * k >= 0 { y1 - 7 * k } else { y1 + t };
        super::font::text(img, x1, ty, &label, k, TEXT, Some(TEXT_BG));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_box_landmarks_and_score_only_near_the_face() {
        let mut img = RgbImage::from_pixel(200, 120, Rgb([128, 128, 128]));
        let face = Face {
            bbox: [50.0, 40.0, 120.0, 110.0],
            score: 0.97,
            landmarks: Some([
                [70.0, 60.0],
                [100.0, 60.0],
                [85.0, 75.0],
                [72.0, 92.0],
                [98.0, 92.0],
            ]),
        };
        draw(&mut img, std::slice::from_ref(&face));
        assert_eq!(img.get_pixel(50, 80).0, BOX.0, "left edge");
        assert_eq!(img.get_pixel(120, 80).0, BOX.0, "right edge");
        assert_eq!(img.get_pixel(85, 110).0, BOX.0, "bottom edge");
        for (p, c) in face.landmarks.unwrap().iter().zip(LANDMARKS) {
            assert_eq!(img.get_pixel(p[0] as u32, p[1] as u32).0, c.0);
        }
        // The label sits above the box and holds white glyph pixels.
        let label = (50..70).any(|x| (33..40).any(|y| img.get_pixel(x, y).0 == TEXT.0));
        assert!(label, "no score label above the box");
        assert_eq!(img.get_pixel(10, 10).0, [128; 3], "far from the face");
        assert_eq!(img.get_pixel(85, 50).0, [128; 3], "inside the box");
    }

    #[test]
    fn boxes_past_the_border_are_clipped() {
        let mut img = RgbImage::new(20, 20);
        let f = Face {
            bbox: [-10.0, -10.0, 40.0, 40.0],
            score: 1.0,
            landmarks: None,
        };
        draw(&mut img, &[f]);
        assert_eq!(img.get_pixel(10, 10).0, [0; 3]);
    }
}
