//! Which inputs are videos: by their first bytes (the container's signature), and by extension only for a file
//! whose bytes are neither a known container nor an image (a damaged header still gets ffprobe's error then).

use std::io::Read;
use std::path::Path;

/// Extensions taken as video when the content has no signature we know.
pub const EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg", "mpeg", "ts", "m2ts", "mts", "flv", "wmv",
    "3gp", "ogv",
];

/// ISO BMFF brands of still images (AVIF, HEIF): an `ftyp` box that is not a video.
const IMAGE_BRANDS: &[&[u8; 4]] = &[
    b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis",
];

/// The container named by a file's first bytes, when it is one we read as video.
pub fn container(head: &[u8]) -> Option<&'static str> {
    let at = |o: usize, sig: &[u8]| head.len() >= o + sig.len() && &head[o..o + sig.len()] == sig;
    if at(4, b"ftyp") {
        let brand: Option<&[u8; 4]> = head.get(8..12).and_then(|b| b.try_into().ok());
        return match brand {
            Some(b) if IMAGE_BRANDS.contains(&b) => None,
            _ => Some("ISO BMFF (mp4/mov)"),
        };
    }
    // QuickTime files without ftyp start with one of these atoms.
    if [b"moov", b"mdat", b"wide", b"free"]
        .iter()
        .any(|a| at(4, *a))
    {
        return Some("QuickTime (mov)");
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some("EBML (mkv/webm)");
    }
    if at(0, b"RIFF") && at(8, b"AVI ") {
        return Some("RIFF AVI");
    }
    if at(0, b"FLV\x01") {
        return Some("FLV");
    }
    if at(0, &[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11]) {
        return Some("ASF (wmv)");
    }
    if at(0, &[0x00, 0x00, 0x01, 0xBA]) {
        return Some("MPEG program stream");
    }
    if at(0, b"OggS") {
        return Some("Ogg");
    }
    // MPEG transport stream: a sync byte every 188 bytes (192 for m2ts, whose packets carry a 4-byte prefix).
    let sync = |stride: usize, first: usize| {
        head.len() > first + 2 * stride && (0..3).all(|k| head[first + k * stride] == 0x47)
    };
    if sync(188, 0) || sync(192, 4) {
        return Some("MPEG transport stream");
    }
    None
}

/// Whether `path` is read as a video: its content says so, or it is unreadable or unknown as an image and its
/// extension is a video one. Folders, `-` and images are not.
pub fn is_video(path: &Path) -> bool {
    if path == Path::new(super::super::units::STDIN) || path.is_dir() {
        return false;
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(e)));
    let mut head = Vec::with_capacity(1024);
    let read = std::fs::File::open(path).and_then(|f| f.take(1024).read_to_end(&mut head));
    if read.is_err() {
        return ext;
    }
    if container(&head).is_some() {
        return true;
    }
    ext && image::guess_format(&head).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let mut mp4 = vec![0, 0, 0, 0x20];
        mp4.extend_from_slice(b"ftypisom\0\0\x02\0");
        assert!(container(&mp4).is_some());
        let mut avif = vec![0, 0, 0, 0x1c];
        avif.extend_from_slice(b"ftypavif");
        assert_eq!(container(&avif), None);
        assert!(container(&[0x1A, 0x45, 0xDF, 0xA3, 0x01]).is_some());
        assert!(container(b"RIFF\x10\0\0\0AVI LIST").is_some());
        assert_eq!(
            container(b"RIFF\x10\0\0\0WEBPVP8 "),
            None,
            "WebP is an image"
        );
        let mut ts = vec![0u8; 600];
        for k in 0..3 {
            ts[k * 188] = 0x47;
        }
        assert!(container(&ts).is_some());
        assert_eq!(container(b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(container(&[]), None);
    }

    #[test]
    fn content_decides_before_the_extension() {
        let d = std::env::temp_dir().join(format!("sshface-sniff-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let png = d.join("really_a_png.mp4");
        image::RgbImage::new(4, 4)
            .save_with_format(&png, image::ImageFormat::Png)
            .unwrap();
        assert!(!is_video(&png), "a PNG named .mp4 is an image");
        let mkv = d.join("clip.bin");
        std::fs::write(&mkv, [0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81]).unwrap();
        assert!(is_video(&mkv), "an EBML file is a video whatever its name");
        let junk = d.join("damaged.mkv");
        std::fs::write(&junk, b"not a header").unwrap();
        assert!(
            is_video(&junk),
            "unknown bytes with a video extension go to ffprobe"
        );
        assert!(is_video(&d.join("missing.mp4")));
        assert!(!is_video(&d.join("missing.png")));
        assert!(!is_video(&d));
        let _ = std::fs::remove_dir_all(&d);
    }
}
