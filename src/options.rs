//! Per-call detection options and the last steps on a face list: mapping back to original pixels, clipping and
//! the face limit. Beside detector.rs so that it stays about the plan and the GPU.

use crate::detector::Face;
use crate::error::{Error, Result};
use crate::model::pipeline::Thresholds;

/// One image's result in the CLI's JSON schema (`detect`'s json and jsonl rows, with the `serde` feature):
/// `{"image": …, "width": W, "height": H, "faces": [Face, …]}`, width and height in original pixels.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ImageFaces {
    /// The image's path as given (or `-`, or `<tar>/<entry>`).
    pub image: String,
    /// Width in original pixels, after EXIF orientation.
    pub width: u32,
    /// Height in original pixels, after EXIF orientation.
    pub height: u32,
    /// The faces, best first.
    pub faces: Vec<Face>,
}

/// Per-call options of [`Detector::detect_with`](crate::Detector::detect_with) and
/// [`Detector::detect_batch_with`](crate::Detector::detect_batch_with); `None` keeps the builder's.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DetectOptions {
    /// Keep detections with score > t (in [0, 1]).
    pub score: Option<f32>,
    /// NMS IoU threshold (in [0, 1]).
    pub nms: Option<f32>,
    /// Keep at most this many faces per image, the best-scoring first (insightface's `max_num`, YuNet's `topK`).
    pub max_faces: Option<usize>,
}

impl DetectOptions {
    pub(crate) fn thresholds(&self, base: Thresholds) -> Result<Thresholds> {
        let th = Thresholds {
            score: self.score.unwrap_or(base.score),
            nms: self.nms.unwrap_or(base.nms),
        };
        check_unit("score threshold", th.score)?;
        check_unit("NMS IoU threshold", th.nms)?;
        Ok(th)
    }
}

fn check_unit(what: &str, v: f32) -> Result<()> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::Config(format!("{what} {v} must be in [0, 1]")))
    }
}

impl Face {
    /// The face with boxes and landmarks multiplied by `[fx, fy]`: e.g. from a resized image back to original pixels
    /// (`fx` = original width / resized width).
    pub fn scaled(mut self, [fx, fy]: [f32; 2]) -> Face {
        let b = self.bbox;
        self.bbox = [b[0] * fx, b[1] * fy, b[2] * fx, b[3] * fy];
        if let Some(l) = &mut self.landmarks {
            for p in l.iter_mut() {
                *p = [p[0] * fx, p[1] * fy];
            }
        }
        self
    }

    /// The face with its box clipped to a `width`×`height` image (landmarks unchanged).
    pub fn clipped(mut self, width: f32, height: f32) -> Face {
        let [x1, y1, x2, y2] = self.bbox;
        self.bbox = [
            x1.clamp(0.0, width),
            y1.clamp(0.0, height),
            x2.clamp(0.0, width),
            y2.clamp(0.0, height),
        ];
        self
    }
}

/// Boxes and landmarks of a resized image back in original pixels (`factor`: original pixels per network pixel).
pub(crate) fn scale_faces(faces: Vec<Face>, factor: [f32; 2]) -> Vec<Face> {
    if factor == [1.0, 1.0] {
        return faces;
    }
    faces.into_iter().map(|f| f.scaled(factor)).collect()
}

/// Keeps the first `max_faces` of `faces` (best first, as detect returns them) and clips their boxes to `clip`
/// (width, height) when given: what [`Detector::detect_with`](crate::Detector::detect_with) does after mapping boxes back to original pixels, for
/// callers that map boxes themselves (the CLI's `--max-side` and size buckets).
pub fn finish_faces(
    faces: Vec<Face>,
    clip: Option<(f32, f32)>,
    max_faces: Option<usize>,
) -> Vec<Face> {
    let n = max_faces.unwrap_or(usize::MAX);
    faces
        .into_iter()
        .take(n)
        .map(|f| match clip {
            Some((w, h)) => f.clipped(w, h),
            None => f,
        })
        .collect()
}
