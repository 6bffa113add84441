//! Image outputs of `detect`: `--draw` (annotated copies), `--crops` (one file per face), `--blur` (anonymised
//! copies computed on the GPU). Files keep the input's
//! path below the output folder (root and `..` dropped), so images of the same name in different folders do not
//! overwrite each other.

use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use image::codecs::jpeg::JpegEncoder;
use image::{ImageFormat, RgbImage};
use sshface::detector::{Blur, BlurMode};
use sshface::{Detector, Face};

#[derive(Args, Clone, Default)]
pub struct VisualArgs {
    /// Write a copy of each image with boxes, scores and landmarks to DIR (same name and format; JPEG quality 95);
    /// video input: the video with boxes to this file.
    #[arg(long, value_name = "DIR")]
    pub draw: Option<PathBuf>,
    /// Write one PNG per face to DIR as <stem>_<k>.png (k: the face's index in the results).
    #[arg(long, value_name = "DIR")]
    pub crops: Option<PathBuf>,
    /// With --crops: widen each box by F times its size on every side (clipped to the image).
    #[arg(long, value_name = "F", default_value_t = 0.2, requires = "crops")]
    pub crop_margin: f32,
    /// With --crops (retinaface-mnv2): S×S crops aligned by the five landmarks onto the ArcFace template (S = 112 is
    /// the template's own size).
    #[arg(long, value_name = "S", requires = "crops", value_parser = clap::value_parser!(u32).range(16..=1024))]
    pub align: Option<u32>,
    /// Write a copy of each image with every face anonymised (computed on the GPU) to DIR, as --draw names them;
    /// video input: the anonymised video to this file (audio copied).
    #[arg(long, value_name = "DIR")]
    pub blur: Option<PathBuf>,
    /// With --blur: what replaces a face.
    #[arg(long, value_enum, default_value = "gaussian", requires = "blur")]
    pub mode: ModeArg,
    /// With --blur: the anonymised ellipse's axes are the box's sides times F.
    #[arg(long, value_name = "F", default_value_t = 1.3, requires = "blur")]
    pub mask_scale: f32,
}

#[derive(Clone, Copy, Default, ValueEnum)]
pub enum ModeArg {
    /// A Gaussian blur (σ a tenth of the mask's longer side).
    #[default]
    Gaussian,
    /// Coarse blocks, about 12 across the mask.
    Pixelate,
    /// Black.
    Solid,
}

/// An image's faces (in its pixels) and, with `--blur`, the image anonymised on the GPU.
pub type Detected = (Vec<Face>, Option<RgbImage>);

/// Detects faces in `imgs`, anonymising them on the GPU in the same submit when `blur` is given.
pub fn detect(
    det: &Detector,
    imgs: &[RgbImage],
    blur: Option<&Blur>,
) -> sshface::Result<Vec<Detected>> {
    Ok(match blur {
        None => det
            .detect_batch(imgs)?
            .into_iter()
            .map(|f| (f, None))
            .collect(),
        Some(b) => det
            .detect_anonymised(imgs, b)?
            .into_iter()
            .map(|(f, i)| (f, Some(i)))
            .collect(),
    })
}

impl VisualArgs {
    pub fn any(&self) -> bool {
        self.draw.is_some() || self.crops.is_some() || self.blur.is_some()
    }

    /// The anonymisation `--blur` asks for.
    pub fn blur(&self) -> Option<Blur> {
        self.blur.as_ref().map(|_| Blur {
            mode: match self.mode {
                ModeArg::Gaussian => BlurMode::Gaussian,
                ModeArg::Pixelate => BlurMode::Pixelate,
                ModeArg::Solid => BlurMode::Solid,
            },
            mask_scale: self.mask_scale,
        })
    }

    /// Rejects combinations that cannot work, before any image is read, and creates the output folders.
    pub fn check(&self, landmarks: bool) -> anyhow::Result<()> {
        self.check_values(landmarks)?;
        for d in [&self.draw, &self.crops, &self.blur].into_iter().flatten() {
            std::fs::create_dir_all(d).with_context(|| format!("output folder {}", d.display()))?;
        }
        Ok(())
    }

    /// The checks of [`check`](Self::check) on values only (video input names output files, not folders).
    pub fn check_values(&self, landmarks: bool) -> anyhow::Result<()> {
        if !(self.crop_margin.is_finite() && self.crop_margin >= 0.0) {
            anyhow::bail!(
                "--crop-margin {} must be a number ≥ 0 (0.2 widens each side by 20 % of the box)",
                self.crop_margin
            );
        }
        if self.align.is_some() && !landmarks {
            anyhow::bail!("--align needs landmarks: use --model retinaface-mnv2");
        }
        if !(self.mask_scale.is_finite() && self.mask_scale > 0.0) {
            anyhow::bail!(
                "--mask-scale {} must be a number > 0 (1.3: ellipses 30 % larger than the boxes)",
                self.mask_scale
            );
        }
        Ok(())
    }

    /// Writes the outputs of one image: `img` is the image the detector saw (after `--max-side`, without bucket
    /// padding) and `faces` are in its pixels.
    pub fn emit(
        &self,
        name: &str,
        img: &RgbImage,
        anonymised: Option<&RgbImage>,
        faces: &[Face],
    ) -> anyhow::Result<()> {
        if let (Some(dir), Some(a)) = (&self.blur, anonymised) {
            save(a, &below(dir, name))?;
        }
        if let Some(dir) = &self.draw {
            let mut copy = img.clone();
            super::draw::draw(&mut copy, faces);
            save(&copy, &below(dir, name))?;
        }
        if let Some(dir) = &self.crops {
            let rel = below(dir, name);
            let stem = rel.file_stem().unwrap_or_default().to_string_lossy();
            for (k, f) in faces.iter().enumerate() {
                let crop = match (self.align, &f.landmarks) {
                    (Some(s), Some(lm)) => Some(super::crops::align(img, lm, s)),
                    _ => super::crops::crop(img, f, self.crop_margin),
                };
                if let Some(c) = crop {
                    save(&c, &rel.with_file_name(format!("{stem}_{k}.png")))?;
                }
            }
        }
        Ok(())
    }
}

/// `dir` joined with the normal components of `name` (an input path, or `<tar>/<entry>`).
pub fn below(dir: &Path, name: &str) -> PathBuf {
    let rel: PathBuf = Path::new(name)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    dir.join(rel)
}

/// Saves `img` in the format its extension names (PNG when none is known); JPEG at quality 95.
pub fn save(img: &RgbImage, path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("output folder {}", parent.display()))?;
    }
    let fmt = ImageFormat::from_path(path).unwrap_or(ImageFormat::Png);
    let write = || -> image::ImageResult<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        match fmt {
            ImageFormat::Jpeg => JpegEncoder::new_with_quality(&mut f, 95).encode_image(img),
            ImageFormat::Png | ImageFormat::Bmp | ImageFormat::Tiff | ImageFormat::WebP => {
                img.write_to(&mut f, fmt)
            }
            _ => img.write_to(&mut f, ImageFormat::Png),
        }
    };
    write().with_context(|| format!("writing image {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_stay_below_the_folder() {
        let d = Path::new("out");
        assert_eq!(below(d, "/data/a/x.jpg"), Path::new("out/data/a/x.jpg"));
        assert_eq!(below(d, "../x.png"), Path::new("out/x.png"));
        assert_eq!(below(d, "s.tar/e/1.jpg"), Path::new("out/s.tar/e/1.jpg"));
    }
}
