//! Truncated images: a JPEG whose data ends before its end-of-image marker (the `image` crate's JPEG decoder then
//! fills the missing rows with grey and says nothing), and a PNG whose image data ends or breaks after some rows
//! (the `image` crate then fails the whole file). Both decode as far as their data goes, like libjpeg and libpng,
//! and the caller is told so.

use std::io::Cursor;

use image::{DynamicImage, GrayAlphaImage, GrayImage, RgbImage, RgbaImage};

/// What fills the part of a truncated image that has no data: mid-grey, as the JPEG decoder does.
pub const FILL: u8 = 128;

/// The `image` crate's default allocation limit (`image::Limits::default().max_alloc`).
const MAX_ALLOC: u64 = 512 << 20;

/// Whether a JPEG stream reaches its end-of-image marker (EOI). Walks the marker segments from SOI and skips each
/// scan's entropy-coded data (where `FF` is stuffed as `FF 00`, and `FF D0`–`FF D7` are restart markers), so an EOI
/// inside an EXIF thumbnail does not count. A stream that ends inside a segment or a scan is truncated.
pub fn jpeg_reaches_eoi(b: &[u8]) -> bool {
    let mut pos = 2;
    loop {
        // Fill bytes (any number of FF) may precede a marker.
        while b.get(pos) == Some(&0xff) && b.get(pos + 1) == Some(&0xff) {
            pos += 1;
        }
        let (Some(&0xff), Some(&marker)) = (b.get(pos), b.get(pos + 1)) else {
            return false;
        };
        pos += 2;
        match marker {
            0xd9 => return true,
            0x01 | 0xd0..=0xd7 => continue,
            _ => {}
        }
        let Some(len) = b
            .get(pos..pos + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            return false;
        };
        pos += len;
        if marker == 0xda {
            // Entropy-coded data up to the next marker that is neither stuffing nor a restart.
            loop {
                match (b.get(pos), b.get(pos + 1)) {
                    (Some(&0xff), Some(&(0x00 | 0xd0..=0xd7 | 0xff))) => pos += 1,
                    (Some(&0xff), Some(_)) => break,
                    (Some(_), _) => pos += 1,
                    (None, _) => return false,
                }
            }
        }
    }
}

/// Decodes the rows of a PNG that come before its data ends or breaks: `Some((image, rows decoded, rows))` when at
/// least one row decoded, `None` when the header itself is unreadable or no row came out (the caller then reports
/// the `image` crate's error). Interlaced images keep their complete passes, each pixel repeated over the block the
/// later passes would have filled (what a browser shows while loading); rows with no data are [`FILL`].
pub fn png_rows(bytes: &[u8], max_pixels: Option<u64>) -> Option<(DynamicImage, u32, u32)> {
    let mut dec = png::Decoder::new(Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().ok()?;
    let (w, h, interlaced) = {
        let info = reader.info();
        (info.width, info.height, info.interlaced)
    };
    if max_pixels.is_some_and(|m| u64::from(w) * u64::from(h) > m) {
        return None;
    }
    let (color, depth) = reader.output_color_type();
    if depth != png::BitDepth::Eight {
        return None;
    }
    let samples = color.samples();
    let stride = w as usize * samples;
    // The same allocation bound as the `image` crate's decoders (whose failure may be why we are here).
    let size = stride
        .checked_mul(h as usize)
        .filter(|&n| n as u64 <= MAX_ALLOC)?;
    let mut buf = vec![FILL; size];
    let exif = reader.info().exif_metadata.as_ref().map(|e| e.to_vec());
    let mut rows = 0u32;
    loop {
        match reader.next_interlaced_row() {
            Ok(Some(row)) => {
                let data = row.data();
                match row.interlace() {
                    png::InterlaceInfo::Adam7(info) => {
                        png::splat_interlaced_row(&mut buf, stride, data, info, 8 * samples as u8)
                    }
                    // Rows of a plain image come in order.
                    png::InterlaceInfo::Null(_) => {
                        let at = rows as usize * stride;
                        buf.get_mut(at..at + data.len())?.copy_from_slice(data);
                    }
                }
                rows += 1;
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }
    if rows == 0 {
        return None;
    }
    let img = match color {
        png::ColorType::Grayscale => DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, buf)?),
        png::ColorType::GrayscaleAlpha => {
            DynamicImage::ImageLumaA8(GrayAlphaImage::from_raw(w, h, buf)?)
        }
        png::ColorType::Rgb => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, buf)?),
        png::ColorType::Rgba => DynamicImage::ImageRgba8(RgbaImage::from_raw(w, h, buf)?),
        png::ColorType::Indexed => return None,
    };
    let mut img = img;
    if let Some(o) = exif
        .as_deref()
        .and_then(image::metadata::Orientation::from_exif_chunk)
    {
        img.apply_orientation(o);
    }
    // An interlaced image counts its pass rows; report the share of the image's own rows covered instead.
    let total = if interlaced { adam7_rows(w, h) } else { h };
    Some((img, rows.min(total), total))
}

/// Rows in the seven Adam7 passes of a `w`×`h` image (a pass with no column in a narrow image has no rows).
fn adam7_rows(w: u32, h: u32) -> u32 {
    // (first column, column step, first row, row step) of passes 1–7.
    const PASSES: [(u32, u32, u32, u32); 7] = [
        (0, 8, 0, 8),
        (4, 8, 0, 8),
        (0, 4, 4, 8),
        (2, 4, 0, 4),
        (0, 2, 2, 4),
        (1, 2, 0, 2),
        (0, 1, 1, 2),
    ];
    PASSES
        .iter()
        .filter(|&&(x0, _, _, _)| w > x0)
        .map(|&(_, _, y0, dy)| h.saturating_sub(y0).div_ceil(dy))
        .sum()
}
