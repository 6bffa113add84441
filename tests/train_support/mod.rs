//! Synthetic face data for training tests: faces cut from the repository's test images (where the golden RetinaFace
//! detections put them) pasted at random sizes and positions onto procedural textures, so every box is known.
//!
//! Box convention: a face that covers pixel columns `x1..=x2` and rows `y1..=y2` of the synthetic image has the box
//! `[x1, y1, x2, y2]` with integer coordinates, `x2 = x1 + w − 1` for a face `w` pixels wide — the inclusive
//! (+1 width) boxes that `sshface::train::targets` works with. Its WIDER annotation ([`SynthImage::xywh`]) is
//! `[x1, y1, x2 − x1, y2 − y1]`, because the training recipe reads WIDER's `x + w` as the inclusive `x2`
//! (`gt_boxes`): `gt_boxes(&img.xywh(), img.hw) == img.boxes` exactly.
#![allow(dead_code)]

use std::f32::consts::PI;
use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::{imageops, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sshface::train::targets::iou;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
/// Test images whose `<stem>.retinaface.json` golden detections give the face boxes.
const SOURCES: [&str; 3] = ["astronaut.png", "camera.png", "grace_hopper.jpg"];
/// Golden detections at least this sure are faces worth pasting.
const MIN_SCORE: f64 = 0.9;
/// A crop is the face box grown by this fraction of its width and height (half on each side), so the pasted face
/// keeps some of its context (hair, chin) as real data does around WIDER's boxes.
const MARGIN: f32 = 0.10;
/// Two pasted faces may overlap at most this much (IoU of the crops and of the face boxes).
const MAX_IOU: f32 = 0.1;
/// Positions tried for one face before it is skipped.
const TRIES: usize = 10;
/// Event folder of [`write_wider_folder`], in WIDER's `<n>--<name>` style.
pub const EVENT: &str = "0--synthetic";

/// One synthetic image and its faces.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthImage {
    /// Row-major RGB8.
    pub rgb: Vec<u8>,
    /// `[H, W]`.
    pub hw: [usize; 2],
    /// Inclusive integer `[x1, y1, x2, y2]` per pasted face (see the module's box convention).
    pub boxes: Vec<[f32; 4]>,
}

impl SynthImage {
    /// WIDER-style `[x, y, w, h]` per face, such that `gt_boxes` gives back [`SynthImage::boxes`].
    pub fn xywh(&self) -> Vec<[f32; 4]> {
        self.boxes
            .iter()
            .map(|&[x1, y1, x2, y2]| [x1, y1, x2 - x1, y2 - y1])
            .collect()
    }
}

/// A face with its margin, and the face box inside it in continuous crop coordinates.
struct FaceCrop {
    img: RgbImage,
    face: [f32; 4],
}

/// Every face of the golden detections with score ≥ [`MIN_SCORE`], cropped once per test process.
fn face_crops() -> &'static [FaceCrop] {
    static CROPS: OnceLock<Vec<FaceCrop>> = OnceLock::new();
    CROPS.get_or_init(|| {
        let mut crops = Vec::new();
        for name in SOURCES {
            // The detector's loader: the golden boxes were taken on the image as it decodes.
            let img = sshface::image_io::load_rgb(format!("{DATA}/{name}")).unwrap();
            let stem = name.split('.').next().unwrap();
            let json = std::fs::read_to_string(format!("{DATA}/{stem}.retinaface.json")).unwrap();
            let golden: serde_json::Value = serde_json::from_str(&json).unwrap();
            for det in golden["detections"].as_array().unwrap() {
                if det["score"].as_f64().unwrap() < MIN_SCORE {
                    continue;
                }
                let b: Vec<f32> = det["box"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect();
                crops.push(crop(&img, [b[0], b[1], b[2], b[3]]));
            }
        }
        assert!(
            !crops.is_empty(),
            "no golden face with score ≥ {MIN_SCORE} in {DATA}"
        );
        crops
    })
}

/// The face box `b` grown by [`MARGIN`] and clamped to `img`, cut out.
fn crop(img: &RgbImage, b: [f32; 4]) -> FaceCrop {
    let (mx, my) = (0.5 * MARGIN * (b[2] - b[0]), 0.5 * MARGIN * (b[3] - b[1]));
    let x0 = (b[0] - mx).floor().max(0.0) as u32;
    let y0 = (b[1] - my).floor().max(0.0) as u32;
    let x1 = ((b[2] + mx).ceil() as u32).min(img.width());
    let y1 = ((b[3] + my).ceil() as u32).min(img.height());
    let (ox, oy) = (x0 as f32, y0 as f32);
    let (cw, ch) = ((x1 - x0) as f32, (y1 - y0) as f32);
    FaceCrop {
        img: imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0).to_image(),
        face: [
            (b[0] - ox).clamp(0.0, cw),
            (b[1] - oy).clamp(0.0, ch),
            (b[2] - ox).clamp(0.0, cw),
            (b[3] - oy).clamp(0.0, ch),
        ],
    }
}

/// `n` images of `hw` pixels, each with a number of faces drawn from `faces_per_image` whose longer side is drawn
/// from `face_px`, on a fresh texture. A face that finds no place overlapping the others by at most IoU 0.1 within a
/// few tries (or is larger than the image) is skipped, so an image may hold fewer faces. The same arguments give the
/// same bytes.
pub fn synth_set(
    n: usize,
    hw: [usize; 2],
    seed: u64,
    faces_per_image: RangeInclusive<usize>,
    face_px: RangeInclusive<u32>,
) -> Vec<SynthImage> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut img = background(&mut rng, hw);
            let count = rng.random_range(faces_per_image.clone());
            let boxes = paste_faces(&mut rng, &mut img, count, &face_px);
            SynthImage {
                rgb: img.into_raw(),
                hw,
                boxes,
            }
        })
        .collect()
}

/// Pastes up to `count` faces into `img`; returns their inclusive boxes.
fn paste_faces(
    rng: &mut ChaCha8Rng,
    img: &mut RgbImage,
    count: usize,
    face_px: &RangeInclusive<u32>,
) -> Vec<[f32; 4]> {
    let crops = face_crops();
    // (pasted crop, face box), both inclusive pixel boxes.
    let mut placed: Vec<([f32; 4], [f32; 4])> = Vec::new();
    for _ in 0..count {
        let src = &crops[rng.random_range(0..crops.len())];
        let side = rng.random_range(face_px.clone()) as f32;
        let mirror = rng.random_bool(0.5);
        let scale = side / (src.face[2] - src.face[0]).max(src.face[3] - src.face[1]);
        let cw = ((src.img.width() as f32 * scale).round() as u32).max(1);
        let ch = ((src.img.height() as f32 * scale).round() as u32).max(1);
        if cw > img.width() || ch > img.height() {
            continue;
        }
        let mut face = imageops::resize(&src.img, cw, ch, imageops::FilterType::Triangle);
        let (sx, sy) = (
            cw as f32 / src.img.width() as f32,
            ch as f32 / src.img.height() as f32,
        );
        // Continuous face extent in the resized crop; rounded to whole pixels so WIDER's integers hold it exactly.
        let [mut a, b, mut c, d] = [
            src.face[0] * sx,
            src.face[1] * sy,
            src.face[2] * sx,
            src.face[3] * sy,
        ];
        if mirror {
            imageops::flip_horizontal_in_place(&mut face);
            (a, c) = (cw as f32 - c, cw as f32 - a);
        }
        let (fx1, fy1) = (a.round(), b.round());
        let (fx2, fy2) = ((c.round() - 1.0).max(fx1), (d.round() - 1.0).max(fy1));
        for _ in 0..TRIES {
            let px = rng.random_range(0..=img.width() - cw) as f32;
            let py = rng.random_range(0..=img.height() - ch) as f32;
            let rect = [px, py, px + cw as f32 - 1.0, py + ch as f32 - 1.0];
            let tight = [px + fx1, py + fy1, px + fx2, py + fy2];
            if placed
                .iter()
                .all(|(r, t)| iou(*r, rect) <= MAX_IOU && iou(*t, tight) <= MAX_IOU)
            {
                imageops::replace(img, &face, px as i64, py as i64);
                placed.push((rect, tight));
                break;
            }
        }
    }
    placed.into_iter().map(|(_, t)| t).collect()
}

/// A procedural texture: a weighted mix of a four-corner colour gradient, stripes or checks at a random angle and
/// period, and two-colour value noise, with weights, colours and scales drawn per image so that no two backgrounds
/// look alike (a detector must not learn "face = the only thing that is not flat").
fn background(rng: &mut ChaCha8Rng, hw: [usize; 2]) -> RgbImage {
    let [h, w] = hw;
    let mut colour = || [0; 3].map(|_: u8| rng.random_range(0.0..255.0f32));
    let corners = [colour(), colour(), colour(), colour()];
    let (stripe_a, stripe_b, noise_a, noise_b) = (colour(), colour(), colour(), colour());
    let angle = rng.random_range(0.0..PI);
    let period = rng.random_range(4.0..40.0f32);
    let checks = rng.random_bool(0.5);
    let cell = rng.random_range(6..40usize);
    let (gw, gh) = (w / cell + 2, h / cell + 2);
    let grid: Vec<f32> = (0..gw * gh).map(|_| rng.random::<f32>()).collect();
    let weights = [0; 3].map(|_: u8| rng.random_range(0.05..1.0f32));
    let total: f32 = weights.iter().sum();
    let (cos, sin) = (angle.cos(), angle.sin());
    let mut img = RgbImage::new(w as u32, h as u32);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let (xf, yf) = (x as f32, y as f32);
        let (u, v) = (
            xf / w.max(2).saturating_sub(1) as f32,
            yf / h.max(2).saturating_sub(1) as f32,
        );
        let band = |t: f32| (t / period).rem_euclid(1.0) < 0.5;
        let along = band(xf * cos + yf * sin);
        let on = if checks {
            along ^ band(yf * cos - xf * sin)
        } else {
            along
        };
        let noise = value_noise(&grid, gw, xf / cell as f32, yf / cell as f32);
        for ch in 0..3 {
            let top = corners[0][ch] * (1.0 - u) + corners[1][ch] * u;
            let bottom = corners[2][ch] * (1.0 - u) + corners[3][ch] * u;
            let gradient = top * (1.0 - v) + bottom * v;
            let stripe = if on { stripe_a[ch] } else { stripe_b[ch] };
            let noisy = noise_a[ch] * noise + noise_b[ch] * (1.0 - noise);
            let mix = (weights[0] * gradient + weights[1] * stripe + weights[2] * noisy) / total;
            px[ch] = mix.round().clamp(0.0, 255.0) as u8;
        }
    }
    img
}

/// Value noise at grid coordinates `(gx, gy)`: the random values at the four surrounding grid nodes, blended with
/// smoothstep weights so cell borders do not show as creases.
fn value_noise(grid: &[f32], gw: usize, gx: f32, gy: f32) -> f32 {
    let (ix, iy) = (gx as usize, gy as usize);
    let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
    let (tx, ty) = (smooth(gx.fract()), smooth(gy.fract()));
    let at = |x: usize, y: usize| grid[y * gw + x];
    let top = at(ix, iy) * (1.0 - tx) + at(ix + 1, iy) * tx;
    let bottom = at(ix, iy + 1) * (1.0 - tx) + at(ix + 1, iy + 1) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// Writes `set` as a WIDER FACE training folder: `dir/images/0--synthetic/NNNN.png` and
/// `dir/wider_face_train_bbx_gt.txt` (paths relative to `dir/images`, faces as [`SynthImage::xywh`] with six zero
/// attributes, the placeholder line of zeros after a record without faces). Returns the annotation file's path.
pub fn write_wider_folder(dir: &Path, set: &[SynthImage]) -> std::io::Result<PathBuf> {
    let images = dir.join("images");
    std::fs::create_dir_all(images.join(EVENT))?;
    let mut text = String::new();
    for (k, im) in set.iter().enumerate() {
        let rel = format!("{EVENT}/{k:04}.png");
        let [h, w] = im.hw;
        let img = RgbImage::from_raw(w as u32, h as u32, im.rgb.clone()).ok_or_else(|| {
            std::io::Error::other(format!("{rel}: {} bytes for {h}×{w} RGB", im.rgb.len()))
        })?;
        img.save(images.join(&rel)).map_err(std::io::Error::other)?;
        let faces = im.xywh();
        // Writing to a String cannot fail.
        let _ = writeln!(text, "{rel}\n{}", faces.len());
        for [x, y, fw, fh] in &faces {
            let _ = writeln!(
                text,
                "{} {} {} {} 0 0 0 0 0 0 ",
                x.round(),
                y.round(),
                fw.round(),
                fh.round()
            );
        }
        if faces.is_empty() {
            text.push_str("0 0 0 0 0 0 0 0 0 0 \n");
        }
    }
    let ann = dir.join("wider_face_train_bbx_gt.txt");
    std::fs::write(&ann, text)?;
    Ok(ann)
}
