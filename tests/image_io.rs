//! CPU-only: image decoding to RGB8 (EXIF orientation, grayscale, errors naming the file).

use std::path::{Path, PathBuf};

use image::{ExtendedColorType, ImageEncoder};
use sshface::image_io::load_rgb8;
use sshface::Error;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A path in the temp dir unique to this test process.
fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sshface-{}-{name}", std::process::id()))
}

#[test]
fn astronaut_matches_golden_input_rgb() {
    let (rgb, hw) = load_rgb8(&data("astronaut.png")).unwrap();
    assert_eq!(hw, [512, 512]);
    let bytes = std::fs::read(data("astronaut.heads.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("input_rgb").unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::U8);
    assert_eq!(t.shape(), &[512, 512, 3]);
    let bad = rgb.iter().zip(t.data()).position(|(a, b)| a != b);
    assert_eq!(bad, None, "first differing byte");
    assert_eq!(rgb.len(), t.data().len());
}

#[test]
fn grayscale_is_replicated_and_jpeg_loads() {
    let (rgb, hw) = load_rgb8(&data("camera.png")).unwrap();
    assert_eq!(hw, [512, 512]);
    assert!(rgb.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    assert!(
        rgb.chunks(3).any(|p| p[0] != rgb[0]),
        "not a constant image"
    );
    let (rgb, hw) = load_rgb8(&data("grace_hopper.jpg")).unwrap();
    assert_eq!(hw, [600, 512]);
    assert_eq!(rgb.len(), 600 * 512 * 3);
}

/// A big-endian EXIF (TIFF) block with a single Orientation entry.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut e = b"MM\0\x2a\0\0\0\x08".to_vec(); // header, IFD at offset 8
    e.extend_from_slice(&1u16.to_be_bytes()); // one entry
    e.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    e.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    e.extend_from_slice(&1u32.to_be_bytes()); // count
    e.extend_from_slice(&value.to_be_bytes());
    e.extend_from_slice(&[0, 0]); // value padding
    e.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    e
}

#[test]
fn exif_orientation_is_applied() {
    // 2×3 (H×W) image, pixel (y, x) = [10y + x, 100, 200]; orientation 6 = rotate 90° clockwise.
    let (h, w) = (2usize, 3usize);
    let rgb: Vec<u8> = (0..h * w)
        .flat_map(|i| [(10 * (i / w) + i % w) as u8, 100, 200])
        .collect();
    let path = temp("rot90.png");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut enc = image::codecs::png::PngEncoder::new(&mut file);
    enc.set_exif_metadata(exif_orientation(6)).unwrap();
    enc.write_image(&rgb, w as u32, h as u32, ExtendedColorType::Rgb8)
        .unwrap();
    drop(file);
    let (out, hw) = load_rgb8(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(hw, [3, 2]);
    // Clockwise: output (y', x') shows input (y = H − 1 − x', x = y').
    for yo in 0..3 {
        for xo in 0..2 {
            let want = (10 * (h - 1 - xo) + yo) as u8;
            assert_eq!(out[(yo * 2 + xo) * 3], want, "output pixel ({yo}, {xo})");
        }
    }
}

#[test]
fn bad_files_are_errors_naming_the_file() {
    // Cut inside the header: nothing decodes, so it is an error (a cut inside the pixel data is a partial image:
    // `truncated_images_decode_partly_and_say_so`).
    let png = std::fs::read(data("astronaut.png")).unwrap();
    let path = temp("truncated.png");
    std::fs::write(&path, &png[..30]).unwrap();
    let e = load_rgb8(&path).unwrap_err();
    std::fs::remove_file(&path).ok();
    assert!(matches!(e, Error::Image { .. }), "{e}");
    assert!(e.to_string().contains("truncated.png"), "{e}");

    let path = temp("garbage.png");
    std::fs::write(&path, b"not an image at all").unwrap();
    let e = load_rgb8(&path).unwrap_err();
    std::fs::remove_file(&path).ok();
    assert!(
        matches!(e, Error::Image { .. }) && e.to_string().contains("garbage.png"),
        "{e}"
    );

    let e = load_rgb8(Path::new("/nonexistent/face.jpg")).unwrap_err();
    assert!(
        matches!(e, Error::Image { .. }) && e.to_string().contains("/nonexistent/face.jpg"),
        "{e}"
    );
}

/// Rows `rows` of `a` and `b` (RGB8 of equal width): the largest channel difference.
fn max_diff(a: &image::RgbImage, b: &image::RgbImage, rows: std::ops::Range<u32>) -> u8 {
    rows.flat_map(|y| (0..a.width()).map(move |x| (x, y)))
        .flat_map(|(x, y)| (0..3).map(move |c| a.get_pixel(x, y)[c].abs_diff(b.get_pixel(x, y)[c])))
        .max()
        .unwrap_or(0)
}

/// Issue 11 part 7: a PNG or JPEG cut inside its pixel data decodes as far as the data goes; `*_checked` says so,
/// the rows before the cut are those of the whole file (decoded by the `image` crate), the rest are mid-grey.
/// Complete files, and a JPEG with bytes after its end marker, are not reported.
#[test]
fn truncated_images_decode_partly_and_say_so() {
    use sshface::image_io::{decode_rgb_checked, load_rgb_checked};
    for (file, cut, kind) in [
        ("astronaut.png", 2, "truncated or corrupt PNG"),
        ("grace_hopper.jpg", 2, "truncated JPEG"),
        ("camera.png", 3, "truncated or corrupt PNG"),
    ] {
        let bytes = std::fs::read(data(file)).unwrap();
        let whole = image::load_from_memory(&bytes).unwrap().to_rgb8();
        let full = decode_rgb_checked(file, &bytes, None).unwrap();
        assert!(full.partial.is_none(), "{file}: {:?}", full.partial);
        assert_eq!(full.image, whole, "{file}");

        let path = temp(&format!("cut-{file}"));
        std::fs::write(&path, &bytes[..bytes.len() / cut]).unwrap();
        let d = load_rgb_checked(&path, None).unwrap();
        std::fs::remove_file(&path).ok();
        let why = d.partial.expect("a cut file is reported");
        assert!(why.starts_with(kind), "{file}: {why}");
        assert_eq!(d.image.dimensions(), whole.dimensions(), "{file}");
        let h = whole.height();
        // The first rows decoded exactly, the last rows are the grey fill.
        assert_eq!(
            max_diff(&d.image, &whole, 0..h / (2 * cut as u32)),
            0,
            "{file}: top rows"
        );
        let last = d.image.rows().next_back().unwrap();
        assert!(
            last.into_iter().all(|p| p.0 == [128; 3]),
            "{file}: bottom row is not grey"
        );
        if kind.ends_with("PNG") {
            let rows: u32 = why.split(' ').nth(4).unwrap().parse().unwrap();
            assert!(rows > 0 && rows < h, "{file}: {why}");
            assert!(
                why.contains(&format!("{rows} of {h} rows decoded")),
                "{why}"
            );
            assert_eq!(
                max_diff(&d.image, &whole, 0..rows),
                0,
                "{file}: decoded rows"
            );
        }
    }
    // A PNG cut after its image data, before IEND: every row is there, and the warning says so.
    let png = std::fs::read(data("astronaut.png")).unwrap();
    let d = decode_rgb_checked("end.png", &png[..png.len() - 12], None).unwrap();
    let why = d.partial.unwrap();
    assert!(
        why.starts_with(
            "truncated or corrupt PNG: all 512 rows decoded, the file breaks after them"
        ),
        "{why}"
    );
    assert_eq!(d.image, image::load_from_memory(&png).unwrap().to_rgb8());
    let mut jpeg = std::fs::read(data("grace_hopper.jpg")).unwrap();
    jpeg.extend_from_slice(b"\0\0trailing bytes after the end marker");
    assert!(decode_rgb_checked("t.jpg", &jpeg, None)
        .unwrap()
        .partial
        .is_none());
}

/// CRC-32 (ISO-HDLC), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |c, &b| {
        (0..8).fold(c ^ u32::from(b), |c, _| {
            if c & 1 == 1 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            }
        })
    })
}

/// An Adam7-interlaced 16×16 grey PNG of `px(x, y)` with stored (uncompressed) zlib blocks, so a byte count in the
/// file is a byte count of raw pass data; and where pass 4's data starts in the file.
fn interlaced_png(px: impl Fn(u32, u32) -> u8) -> (Vec<u8>, usize) {
    // (x0, y0, dx, dy) of passes 1–7.
    const PASSES: [(u32, u32, u32, u32); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let (mut raw, mut pass4) = (Vec::new(), 0);
    for (k, &(x0, y0, dx, dy)) in PASSES.iter().enumerate() {
        if k == 3 {
            pass4 = raw.len();
        }
        for y in (y0..16).step_by(dy as usize) {
            raw.push(0); // filter: none
            raw.extend((x0..16).step_by(dx as usize).map(|x| px(x, y)));
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut z, &raw).unwrap();
    let idat = z.finish().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        let body = [kind, data].concat();
        png.extend(&body);
        png.extend(crc32(&body).to_be_bytes());
    };
    // 16×16, 8-bit grey, deflate, adaptive filtering, Adam7.
    chunk(b"IHDR", &[0, 0, 0, 16, 0, 0, 0, 16, 8, 0, 0, 0, 1]);
    let idat_at = 8 + 25 + 8;
    chunk(b"IDAT", &idat);
    chunk(b"IEND", &[]);
    // The zlib header (2 bytes) and the stored block's header (5 bytes) precede the raw data.
    (png, idat_at + 7 + pass4)
}

/// An interlaced PNG cut inside pass 4 keeps passes 1–3, each pixel repeated over the 4×4 block they cover (what a
/// browser shows while loading); the whole file decodes exactly.
#[test]
fn a_truncated_interlaced_png_keeps_its_complete_passes() {
    use sshface::image_io::decode_rgb_checked;
    let px = |x: u32, y: u32| (x * 16 + y) as u8;
    let (png, pass4) = interlaced_png(px);
    let whole = decode_rgb_checked("i.png", &png, None).unwrap();
    assert!(whole.partial.is_none());
    for (x, y, p) in whole.image.enumerate_pixels() {
        assert_eq!(p.0, [px(x, y); 3], "whole file, pixel ({x}, {y})");
    }
    let d = decode_rgb_checked("i.png", &png[..pass4 + 3], None).unwrap();
    let why = d.partial.expect("a cut file is reported");
    // Passes 1–3 of 16 rows: 2 + 2 + 2 rows of the 2 + 2 + 2 + 4 + 4 + 8 + 8 pass rows.
    assert!(
        why.starts_with("truncated or corrupt PNG: 6 of 30 rows decoded"),
        "{why}"
    );
    for (x, y, p) in d.image.enumerate_pixels() {
        assert_eq!(p.0, [px(x & !3, y & !3); 3], "cut file, pixel ({x}, {y})");
    }
}
