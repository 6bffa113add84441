//! Decoding image files to the RGB8 pixels the preprocessing step uploads.

use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

mod partial;

use crate::error::{Error, Result};
use crate::{Detector, Face};

/// File extensions (lower case) of the formats sshface decodes: what folder walks and tar streams pick up.
pub const EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "gif"];

/// Images with more pixels than this are refused from their header, before any pixel is decoded (Pillow's
/// decompression-bomb limit): a small file can declare 30000×30000 and cost gigabytes to decode.
pub const DEFAULT_MAX_PIXELS: u64 = 178_956_970;

/// Whether `p`'s extension is one of [`EXTENSIONS`] (any case).
pub fn is_image_path(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Decodes `path` (format guessed from its content) into row-major RGB8 bytes and its `[H, W]`, after
/// applying the EXIF orientation, so H and W are those of the displayed image. Grayscale is replicated
/// into 3 channels, alpha is dropped, 16-bit samples are scaled to 8 bits.
pub fn load_rgb8(path: &Path) -> Result<(Vec<u8>, [usize; 2])> {
    let rgb = load_rgb(path)?;
    let hw = [rgb.height() as usize, rgb.width() as usize];
    Ok((rgb.into_raw(), hw))
}

/// As [`load_rgb8`], returning the `image` crate's `RgbImage` that [`Detector::detect`](crate::Detector::detect)
/// takes. Images over [`DEFAULT_MAX_PIXELS`] are refused; see [`load_rgb_limited`].
pub fn load_rgb(path: impl AsRef<Path>) -> Result<RgbImage> {
    load_rgb_limited(path, Some(DEFAULT_MAX_PIXELS))
}

/// As [`load_rgb`] with a pixel limit checked on the header before decoding (`None`: no limit). A truncated JPEG or
/// PNG decodes as far as its data goes; [`load_rgb_checked`] also says so.
pub fn load_rgb_limited(path: impl AsRef<Path>, max_pixels: Option<u64>) -> Result<RgbImage> {
    load_rgb_checked(path, max_pixels).map(|d| d.image)
}

/// As [`decode_rgb`] for an image already in memory (e.g. an entry of a tar archive, an upload); `label` names it in
/// errors.
pub fn decode_rgb(label: &str, bytes: &[u8]) -> Result<RgbImage> {
    decode_rgb_limited(label, bytes, Some(DEFAULT_MAX_PIXELS))
}

/// As [`decode_rgb`] with the pixel limit of [`load_rgb_limited`].
pub fn decode_rgb_limited(label: &str, bytes: &[u8], max_pixels: Option<u64>) -> Result<RgbImage> {
    decode_rgb_checked(label, bytes, max_pixels).map(|d| d.image)
}

/// A decoded image, and whether it decoded only partly.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// RGB8 after EXIF orientation.
    pub image: RgbImage,
    /// `Some(why)` when the file is truncated or broken part-way (a JPEG without its end-of-image marker, a PNG whose
    /// image data ends or breaks after some rows): the image holds what decoded, mid-grey where data was missing.
    pub partial: Option<String>,
}

/// As [`load_rgb_limited`], also telling whether the image decoded only partly ([`Decoded::partial`]).
pub fn load_rgb_checked(path: impl AsRef<Path>, max_pixels: Option<u64>) -> Result<Decoded> {
    let path = path.as_ref();
    let label = path.display().to_string();
    let reader = ImageReader::open(path).map_err(|e| Error::Image {
        path: label.clone(),
        msg: format!("cannot open: {e}"),
    })?;
    let reader = guess(&label, reader)?;
    // JPEG and PNG are read whole (the JPEG decoder does so anyway): their truncation checks need the bytes.
    if matches!(reader.format(), Some(ImageFormat::Jpeg | ImageFormat::Png)) {
        let bytes = std::fs::read(path).map_err(|e| Error::Image {
            path: label.clone(),
            msg: format!("cannot read: {e}"),
        })?;
        return decode_bytes(&label, &bytes, max_pixels, reader.format());
    }
    decode(&label, reader, max_pixels).map(|image| Decoded {
        image,
        partial: None,
    })
}

/// As [`decode_rgb_limited`], also telling whether the image decoded only partly ([`Decoded::partial`]).
pub fn decode_rgb_checked(label: &str, bytes: &[u8], max_pixels: Option<u64>) -> Result<Decoded> {
    decode_bytes(label, bytes, max_pixels, None)
}

/// [`decode_rgb_checked`] with the format a file's extension gave (kept where the content says nothing, as
/// `ImageReader::open` does, so such a file gets the decoder's error rather than "unknown format").
fn decode_bytes(
    label: &str,
    bytes: &[u8],
    max_pixels: Option<u64>,
    hint: Option<ImageFormat>,
) -> Result<Decoded> {
    let mut reader = ImageReader::new(Cursor::new(bytes));
    if let Some(f) = hint {
        reader.set_format(f);
    }
    let reader = guess(label, reader)?;
    let format = reader.format();
    match decode(label, reader, max_pixels) {
        Ok(image) => {
            let partial = (format == Some(ImageFormat::Jpeg) && !partial::jpeg_reaches_eoi(bytes))
                .then(|| "truncated JPEG: the data ends before the end-of-image marker; rows without data are grey".to_string());
            Ok(Decoded { image, partial })
        }
        Err(e) if format == Some(ImageFormat::Png) => match partial::png_rows(bytes, max_pixels) {
            Some((img, rows, total)) => {
                let what = if rows < total {
                    format!("{rows} of {total} rows decoded, the rest are grey")
                } else {
                    format!("all {total} rows decoded, the file breaks after them")
                };
                Ok(Decoded {
                    image: img.to_rgb8(),
                    partial: Some(format!(
                        "truncated or corrupt PNG: {what} ({})",
                        error_detail(&e)
                    )),
                })
            }
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The decoder's own words inside an [`Error::Image`].
fn error_detail(e: &Error) -> &str {
    match e {
        Error::Image { msg, .. } => msg,
        _ => "",
    }
}

/// Wraps packed RGB8 rows (`width * height * 3` bytes) as an image, e.g. a camera frame.
pub fn rgb_from_raw(rgb: &[u8], width: u32, height: u32) -> Result<RgbImage> {
    check_raw(rgb.len(), width, height)?;
    RgbImage::from_raw(width, height, rgb.to_vec()).ok_or_else(|| raw_err(rgb.len(), width, height))
}

/// As [`rgb_from_raw`] for BGR8 rows, OpenCV's `Mat` order (continuous `CV_8UC3`).
pub fn rgb_from_bgr(bgr: &[u8], width: u32, height: u32) -> Result<RgbImage> {
    check_raw(bgr.len(), width, height)?;
    let rgb = bgr
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    RgbImage::from_raw(width, height, rgb).ok_or_else(|| raw_err(bgr.len(), width, height))
}

fn raw_err(len: usize, width: u32, height: u32) -> Error {
    Error::Image {
        path: "raw pixels".into(),
        msg: format!(
            "{len} bytes given, but {width}x{height} RGB8 needs {} bytes",
            width as u64 * height as u64 * 3
        ),
    }
}

fn check_raw(len: usize, width: u32, height: u32) -> Result<()> {
    if len as u64 != width as u64 * height as u64 * 3 {
        return Err(raw_err(len, width, height));
    }
    Ok(())
}

impl Detector {
    /// Detects faces in packed RGB8 rows of `width`×`height` (see [`rgb_from_raw`]).
    pub fn detect_rgb8(&self, rgb: &[u8], width: u32, height: u32) -> Result<Vec<Face>> {
        self.detect(&rgb_from_raw(rgb, width, height)?)
    }

    /// Detects faces in packed BGR8 rows (OpenCV's order) of `width`×`height` (see [`rgb_from_bgr`]).
    pub fn detect_bgr8(&self, bgr: &[u8], width: u32, height: u32) -> Result<Vec<Face>> {
        self.detect(&rgb_from_bgr(bgr, width, height)?)
    }
}

fn guess<R: BufRead + Seek>(label: &str, reader: ImageReader<R>) -> Result<ImageReader<R>> {
    let err = |msg: String| Error::Image {
        path: label.to_string(),
        msg,
    };
    let reader = reader
        .with_guessed_format()
        .map_err(|e| err(format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(err(
            "unknown image format (expected PNG, JPEG, BMP, WebP, TIFF or GIF)".to_string(),
        ));
    }
    Ok(reader)
}

/// Decodes a reader whose format [`guess`] found.
fn decode<R: BufRead + Seek>(
    label: &str,
    reader: ImageReader<R>,
    max_pixels: Option<u64>,
) -> Result<RgbImage> {
    let err = |msg: String| Error::Image {
        path: label.to_string(),
        msg,
    };
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| err(format!("cannot decode: {e}")))?;
    let (w, h) = decoder.dimensions();
    if let Some(max) = max_pixels.filter(|&m| w as u64 * h as u64 > m) {
        return Err(err(format!(
            "{w}x{h} = {} pixels is more than the limit of {max} (--max-pixels); refused before decoding",
            w as u64 * h as u64
        )));
    }
    let orientation = decoder
        .orientation()
        .map_err(|e| err(format!("cannot read the EXIF orientation: {e}")))?;
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| err(format!("cannot decode: {e}")))?;
    img.apply_orientation(orientation);
    Ok(img.to_rgb8())
}
