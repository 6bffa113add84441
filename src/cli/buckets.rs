//! Size buckets and `--max-side`: how mixed-size archives share batches and plans.
//!
//! The detector builds one plan per list of input sizes, so an archive of mixed sizes would compile a plan for
//! nearly every batch. With buckets each image is padded at the bottom and right to the smallest canvas of a short
//! ladder that holds it, with the pixel that becomes the network's own pad value after normalisation (retinaface-mnv2:
//! pixel 0 → −1, exactly what its multiple-of-32 padding writes; ssh-vgg16: the Caffe mean colour → ≈ 0). Images of
//! one canvas then run as real batches of one plan. Boxes stay in original pixels because padding is bottom/right
//! only; results differ from unbucketed ones only where the receptive field reaches past the image's own padded
//! edge (right and bottom), see the README for the bound.

use image::{imageops, Rgb, RgbImage};
use sshface::Face;

/// Canvas sides in pixels: multiples of 32 (retinaface-mnv2's alignment), 1.2–1.5× apart, so a canvas is at most
/// 1.5× the image on each side (about 1.2× on average) while an archive needs only a few of them.
pub const LADDER: [u32; 12] = [
    128, 192, 256, 384, 512, 640, 768, 1024, 1280, 1536, 2048, 3072,
];

/// The smallest ladder side ≥ `side`; beyond the ladder, the next multiple of 1024.
pub fn rung(side: u32) -> u32 {
    LADDER
        .iter()
        .copied()
        .find(|&r| r >= side)
        .unwrap_or_else(|| side.div_ceil(1024) * 1024)
}

/// The canvas (width, height) that holds a `w`×`h` image.
pub fn canvas(w: u32, h: u32) -> (u32, u32) {
    (rung(w), rung(h))
}

/// The pixel that preprocessing turns into the network's pad value.
pub fn pad_pixel(model: sshface::Model) -> [u8; 3] {
    match model {
        sshface::Model::RetinafaceMnv2 => [0, 0, 0],
        // ssh-vgg16 subtracts the Caffe BGR means and pads with 0: the means, rounded, as RGB.
        sshface::Model::SshVgg16 => {
            let [b, g, r] = sshface::ops::preprocess::Preprocess::CAFFE_BGR_MEAN;
            [r.round() as u8, g.round() as u8, b.round() as u8]
        }
    }
}

/// The size after `--max-side`: the longer side at most `max_side`, the aspect ratio kept.
fn shrunk(w: u32, h: u32, max_side: Option<u32>) -> (u32, u32) {
    match max_side.filter(|&m| w.max(h) > m) {
        Some(m) => {
            let s = m as f64 / w.max(h) as f64;
            let r = |v: u32| ((v as f64 * s).round() as u32).clamp(1, m);
            (r(w), r(h))
        }
        None => (w, h),
    }
}

/// The processing order of a unit's files when bucketing: by the canvas their headers predict (unreadable ones
/// first), input order within a canvas. Each canvas's images then run back to back, so its plan is built once per
/// unit instead of being evicted from the detector's small plan cache by other canvases in between.
pub fn canvas_order(paths: &[std::path::PathBuf], max_side: Option<u32>) -> Vec<usize> {
    let key = |p: &std::path::PathBuf| {
        let (w, h) = image::ImageReader::open(p)
            .ok()?
            .with_guessed_format()
            .ok()?
            .into_dimensions()
            .ok()?;
        let (w, h) = shrunk(w, h, max_side);
        Some(canvas(w, h))
    };
    let keys: Vec<Option<(u32, u32)>> = paths.iter().map(key).collect();
    let mut order: Vec<usize> = (0..paths.len()).collect();
    order.sort_by_key(|&i| keys[i]);
    order
}

/// An image ready for the GPU: maybe downscaled, maybe padded; the factors map its boxes back to original pixels.
pub struct Prepared {
    pub img: RgbImage,
    /// Original width and height (after EXIF orientation).
    pub width: u32,
    pub height: u32,
    /// Original pixels per prepared pixel in x and y (1 without `--max-side`).
    pub factor: [f32; 2],
    /// The canvas when bucketed: the batching key.
    pub canvas: Option<(u32, u32)>,
}

/// Applies `--max-side` (downscale so the longer side is at most `max_side`) and then the bucket padding.
pub fn prepare(img: RgbImage, max_side: Option<u32>, bucket_pad: Option<[u8; 3]>) -> Prepared {
    let (width, height) = img.dimensions();
    let mut img = img;
    let mut factor = [1.0, 1.0];
    let (nw, nh) = shrunk(width, height, max_side);
    if (nw, nh) != (width, height) {
        img = imageops::resize(&img, nw, nh, imageops::FilterType::Triangle);
        factor = [width as f32 / nw as f32, height as f32 / nh as f32];
    }
    let canvas = bucket_pad.map(|px| {
        let (cw, ch) = canvas(img.width(), img.height());
        if (cw, ch) != img.dimensions() {
            let mut c = RgbImage::from_pixel(cw, ch, Rgb(px));
            imageops::replace(&mut c, &img, 0, 0);
            img = c;
        }
        (cw, ch)
    });
    Prepared {
        img,
        width,
        height,
        factor,
        canvas,
    }
}

/// Boxes and landmarks of the prepared image in original pixels.
pub fn to_original(faces: Vec<Face>, factor: [f32; 2]) -> Vec<Face> {
    faces.into_iter().map(|f| f.scaled(factor)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_is_aligned_increasing_and_holds_every_size() {
        assert!(LADDER
            .windows(2)
            .all(|w| w[0] < w[1] && w[1] as f32 <= w[0] as f32 * 1.5));
        assert!(LADDER.iter().all(|r| r.is_multiple_of(32)));
        for side in [1, 127, 128, 129, 500, 1024, 3072, 3073, 5000] {
            let r = rung(side);
            assert!(r >= side && r.is_multiple_of(32), "{side} → {r}");
        }
        assert_eq!(canvas(640, 427), (640, 512));
        assert_eq!(rung(3073), 4096);
    }

    #[test]
    fn padding_is_bottom_right_with_the_pad_pixel() {
        let img = RgbImage::from_pixel(100, 50, Rgb([9, 9, 9]));
        let p = prepare(img, None, Some(pad_pixel(sshface::Model::RetinafaceMnv2)));
        assert_eq!((p.width, p.height, p.canvas), (100, 50, Some((128, 128))));
        assert_eq!(p.img.dimensions(), (128, 128));
        assert_eq!(p.img.get_pixel(99, 49).0, [9, 9, 9]);
        assert_eq!(p.img.get_pixel(100, 0).0, [0, 0, 0]);
        assert_eq!(p.img.get_pixel(0, 50).0, [0, 0, 0]);
        assert_eq!(pad_pixel(sshface::Model::SshVgg16), [123, 116, 103]);
    }

    #[test]
    fn max_side_downscales_and_maps_back() {
        let img = RgbImage::from_pixel(1000, 600, Rgb([1, 2, 3]));
        let p = prepare(img, Some(500), None);
        assert_eq!(p.img.dimensions(), (500, 300));
        assert_eq!((p.width, p.height, p.canvas), (1000, 600, None));
        let f = Face {
            bbox: [10.0, 20.0, 30.0, 40.0],
            score: 0.5,
            landmarks: Some([[5.0, 6.0]; 5]),
        };
        let back = to_original(vec![f], p.factor);
        assert_eq!(back[0].bbox, [20.0, 40.0, 60.0, 80.0]);
        assert_eq!(back[0].landmarks.unwrap()[4], [10.0, 12.0]);
        let small = prepare(RgbImage::new(10, 10), Some(500), None);
        assert_eq!(
            (small.img.dimensions(), small.factor),
            ((10, 10), [1.0, 1.0])
        );
    }
}
