//! Decoding image files to the RGB8 pixels the preprocessing step uploads.

use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::error::{Error, Result};

/// Decodes `path` (format guessed from its content) into row-major RGB8 bytes and its `[H, W]`, after
/// applying the EXIF orientation, so H and W are those of the displayed image. Grayscale is replicated
/// into 3 channels, alpha is dropped, 16-bit samples are scaled to 8 bits.
pub fn load_rgb8(path: &Path) -> Result<(Vec<u8>, [usize; 2])> {
    let rgb = load_rgb(path)?;
    let hw = [rgb.height() as usize, rgb.width() as usize];
    Ok((rgb.into_raw(), hw))
}

/// As [`load_rgb8`], returning the `image` crate's `RgbImage` that [`Detector::detect`](crate::Detector::detect) takes.
pub fn load_rgb(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let reader = ImageReader::open(path).map_err(|e| Error::Image {
        path: path.display().to_string(),
        msg: format!("cannot open: {e}"),
    })?;
    decode(&path.display().to_string(), reader)
}

/// As [`load_rgb`] for an image already in memory (e.g. an entry of a tar archive); `label` names it in errors.
pub fn decode_rgb(label: &str, bytes: &[u8]) -> Result<RgbImage> {
    decode(label, ImageReader::new(Cursor::new(bytes)))
}

fn decode<R: BufRead + Seek>(label: &str, reader: ImageReader<R>) -> Result<RgbImage> {
    let err = |msg: String| Error::Image {
        path: label.to_string(),
        msg,
    };
    let reader = reader
        .with_guessed_format()
        .map_err(|e| err(format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(err(
            "unknown image format (expected PNG, JPEG, BMP, WebP or TIFF)".to_string(),
        ));
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| err(format!("cannot decode: {e}")))?;
    let orientation = decoder
        .orientation()
        .map_err(|e| err(format!("cannot read the EXIF orientation: {e}")))?;
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| err(format!("cannot decode: {e}")))?;
    img.apply_orientation(orientation);
    Ok(img.to_rgb8())
}
