//! WIDER FACE training data on the CPU: the `wider_face_train_bbx_gt.txt` annotations, the horizontal flip of images
//! and boxes, and the seeded order in which training visits the images.
//!
//! The order is a pure function of `(seed, iteration)`, so a run resumed at iteration `i` sees exactly the images
//! (and flips) the uninterrupted run would have seen. The shuffle uses its own splitmix64 generator rather than the
//! `rand` crate, which is only a dev-dependency of the library.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::image_io::load_rgb8;
use crate::train::targets::gt_boxes;

/// One image of the annotation file: its path relative to the image root and its faces as WIDER's `[x, y, w, h]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Annotation {
    /// Relative to the image root (`WIDER_train/images`), e.g. `0--Parade/0_Parade_marchingband_1_849.jpg`.
    pub path: PathBuf,
    /// `[x, y, w, h]` per face as written in the file; [`gt_boxes`] turns them into training boxes.
    pub faces_xywh: Vec<[f32; 4]>,
}

/// What a face line holds, in order; only the first four are used.
const FACE_FIELDS: &str = "x y w h blur expression illumination invalid occlusion pose";

/// Parses the text of `wider_face_train_bbx_gt.txt`: records of a relative image path, a face count `n`, then `n`
/// lines of ten integers (`x y w h` and six attributes, ignored). A record with `n = 0` is followed by one
/// placeholder line of ten zeros, which must be there (ten integers) and is skipped. CRLF line endings and blank lines between records (e.g. at the end) are accepted.
///
/// # Errors
/// [`Error::Parse`] naming `source`, the 1-based line and what was expected there: an absolute image path, a count
/// that is not a whole number ≥ 0, a face line without ten integers, or a text that ends inside a record.
pub fn parse_wider_train(text: &str, source: &Path) -> Result<Vec<Annotation>> {
    let mut lines = Lines::new(text, source);
    let mut out = Vec::new();
    while let Some((no, path)) = lines.next_nonblank() {
        let rel = PathBuf::from(path);
        if rel.is_absolute() {
            // Joined to the image root, an absolute path would silently replace the root.
            return Err(lines.error(
                no,
                format!("expected an image path relative to the image root, found the absolute path '{path}'"),
            ));
        }
        let (cno, count) = lines.expect(&format!("the face count of '{path}'"))?;
        let n: usize = count.parse().map_err(|_| {
            lines.error(
                cno,
                format!(
                    "expected the face count of '{path}' (a whole number ≥ 0), found '{count}'"
                ),
            )
        })?;
        // Capacity from the lines that remain, not from `n`: a corrupt count must not allocate gigabytes.
        let mut faces = Vec::with_capacity(n.min(lines.remaining()));
        for k in 0..n {
            faces.push(lines.face(&format!("face {} of {n} of '{path}'", k + 1))?);
        }
        if n == 0 {
            // WIDER writes a placeholder face line of zeros after an empty record.
            lines.face(&format!(
                "the placeholder line after '{path}' (a record of 0 faces)"
            ))?;
        }
        out.push(Annotation {
            path: rel,
            faces_xywh: faces,
        });
    }
    Ok(out)
}

/// Reads and parses `file` (see [`parse_wider_train`]).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read (or is not UTF-8), else those of [`parse_wider_train`].
pub fn load_wider_train(file: &Path) -> Result<Vec<Annotation>> {
    let text = std::fs::read_to_string(file).map_err(|cause| Error::Io {
        path: file.display().to_string(),
        cause,
    })?;
    parse_wider_train(&text, file)
}

/// Line cursor of the parser: 1-based line numbers, CR of CRLF endings dropped.
struct Lines<'a> {
    lines: Vec<&'a str>,
    next: usize,
    source: &'a Path,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str, source: &'a Path) -> Self {
        // `str::lines` already drops "\r\n"; a lone trailing '\r' (old Mac endings mixed in) goes with the trim.
        let lines = text.lines().map(|l| l.trim_end_matches('\r')).collect();
        Lines {
            lines,
            next: 0,
            source,
        }
    }

    fn remaining(&self) -> usize {
        self.lines.len() - self.next
    }

    fn error(&self, line: usize, msg: String) -> Error {
        Error::Parse {
            file: self.source.display().to_string(),
            line,
            msg,
        }
    }

    /// The next non-blank line (trimmed) and its number, skipping blank ones; `None` at the end.
    fn next_nonblank(&mut self) -> Option<(usize, &'a str)> {
        while self.next < self.lines.len() {
            let (no, l) = (self.next + 1, self.lines[self.next].trim());
            self.next += 1;
            if !l.is_empty() {
                return Some((no, l));
            }
        }
        None
    }

    /// The next line (trimmed), which must exist and be non-blank: `what` names it in the error.
    fn expect(&mut self, what: &str) -> Result<(usize, &'a str)> {
        let no = self.next + 1;
        match self.lines.get(self.next).map(|l| l.trim()) {
            Some(l) if !l.is_empty() => {
                self.next += 1;
                Ok((no, l))
            }
            Some(_) => Err(self.error(no, format!("expected {what}, found a blank line"))),
            None => Err(self.error(no, format!("expected {what}, but the file ends"))),
        }
    }

    /// The next line as a face line: ten integers, of which `[x, y, w, h]` is returned.
    fn face(&mut self, what: &str) -> Result<[f32; 4]> {
        let expected = format!("{what}: ten integers ({FACE_FIELDS})");
        let (no, l) = self.expect(&expected)?;
        let fields: Vec<&str> = l.split_whitespace().collect();
        let bad = |why: String| self.error(no, format!("expected {expected}, {why}"));
        if fields.len() != 10 {
            return Err(bad(format!("found {} fields in '{l}'", fields.len())));
        }
        let mut v = [0i64; 10];
        for (slot, f) in v.iter_mut().zip(&fields) {
            *slot = f.parse().map_err(|_| bad(format!("found '{f}'")))?;
        }
        Ok([v[0] as f32, v[1] as f32, v[2] as f32, v[3] as f32])
    }
}

/// Mirrors `[x1, y1, x2, y2]` boxes of an image `width` pixels wide: `x1' = W − x2 − 1`, `x2' = W − x1 − 1` (the
/// py-faster-rcnn flip of inclusive pixel boxes, so a box inside `0..=W−1` stays inside). Flipping twice is the
/// identity.
pub fn flip_boxes(boxes: &[[f32; 4]], width: usize) -> Vec<[f32; 4]> {
    let w = width as f32;
    boxes
        .iter()
        .map(|&[x1, y1, x2, y2]| [w - x2 - 1.0, y1, w - x1 - 1.0, y2])
        .collect()
}

/// Mirrors row-major RGB8 pixels of an image `hw = [H, W]` left to right, in place. Only whole rows of `W` pixels
/// within the first `H` are touched, so a buffer of the wrong length is not a panic.
pub fn flip_rgb(rgb: &mut [u8], hw: [usize; 2]) {
    let [h, w] = hw;
    if w == 0 {
        return;
    }
    for row in rgb.chunks_exact_mut(w * 3).take(h) {
        // Reversing the bytes mirrors the pixels and turns each RGB into BGR; reversing each pixel restores it.
        row.reverse();
        row.chunks_exact_mut(3).for_each(<[u8]>::reverse);
    }
}

/// One training image as decoded and, when `flipped`, mirrored, with its boxes in the same pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainImage {
    /// The annotation's relative path, for messages and logs.
    pub name: String,
    /// Row-major RGB8 after EXIF orientation (and the flip).
    pub rgb: Vec<u8>,
    /// `[H, W]`.
    pub hw: [usize; 2],
    /// `[x1, y1, x2, y2]` in these pixels, from [`gt_boxes`] and then [`flip_boxes`] when flipped.
    pub boxes: Vec<[f32; 4]>,
    /// Whether the image and boxes are mirrored.
    pub flipped: bool,
}

/// Decodes `root/ann.path` with the detector's loader ([`load_rgb8`]: EXIF orientation applied) and turns its faces
/// into training boxes ([`gt_boxes`]: clamped to the image, degenerate ones dropped), mirrored when `flip`.
///
/// # Errors
/// Those of [`load_rgb8`], naming the image file.
pub fn load_train_image(root: &Path, ann: &Annotation, flip: bool) -> Result<TrainImage> {
    let (mut rgb, hw) = load_rgb8(&root.join(&ann.path))?;
    let mut boxes = gt_boxes(&ann.faces_xywh, hw);
    if flip {
        flip_rgb(&mut rgb, hw);
        boxes = flip_boxes(&boxes, hw[1]);
    }
    Ok(TrainImage {
        name: ann.path.display().to_string(),
        rgb,
        hw,
        boxes,
        flipped: flip,
    })
}

/// splitmix64's output function: a bijective 64-bit mix whose outputs pass as independent uniform values.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A value determined by `seed` and the two keys, different for each `(a, b)`: chaining the mix keeps nearby seeds
/// and keys from giving related streams.
fn key(seed: u64, a: u64, b: u64) -> u64 {
    splitmix(splitmix(splitmix(seed) ^ a) ^ b)
}

/// Stream tags so the shuffle and the flip coins of one `(seed, epoch)` draw unrelated values.
const SHUFFLE: u64 = 0x5348_5546; // "SHUF"
const COIN: u64 = 0x464C_4950; // "FLIP"

/// The order in which epoch `epoch` visits images `0..n`: a Fisher–Yates shuffle driven by splitmix64 from
/// `(seed, epoch)`. Every image appears exactly once; the same arguments give the same order on every platform.
pub fn epoch_order(n: usize, epoch: u64, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = key(seed ^ SHUFFLE, epoch, n as u64);
    for i in (1..n).rev() {
        state = splitmix(state);
        // Multiply-shift maps the 64-bit value onto 0..=i; its bias (< i / 2^64) is far below anything measurable.
        let j = ((u128::from(state) * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
    order
}

/// Image and flip of training iteration `iteration` (0-based) over a data set of `epoch_len` images: epoch
/// `e = iteration / epoch_len` visits the images in [`epoch_order`]`(epoch_len, e, seed)`, and iteration `iteration`
/// takes its entry `iteration % epoch_len`. With `flip`, a coin per `(epoch, image)` mirrors the image with
/// probability 1/2.
///
/// The authors' recipe (py-faster-rcnn `append_flipped_images`) appends a mirrored copy of every image to the data
/// set, so an epoch of theirs sees each image once as is and once mirrored; a coin per visit gives the same
/// expectation without doubling the epoch, and keeps `epoch_len` the number of distinct images.
///
/// A pure function of its arguments, so `--resume` at any iteration reproduces the sequence. It shuffles the whole
/// epoch on each call (O(`epoch_len`)); a loop over many iterations may cache [`epoch_order`] instead.
///
/// # Panics
/// When `epoch_len` is 0: there is nothing to train on, which the caller must refuse when it loads the data set.
pub fn sample(epoch_len: usize, iteration: u64, seed: u64, flip: bool) -> (usize, bool) {
    assert!(epoch_len > 0, "sample: the training set has no images");
    let n = epoch_len as u64;
    let (epoch, pos) = (iteration / n, (iteration % n) as usize);
    let image = epoch_order(epoch_len, epoch, seed)[pos];
    let flipped = flip && key(seed ^ COIN, epoch, image as u64) & 1 == 1;
    (image, flipped)
}
