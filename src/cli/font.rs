//! A 3×5 pixel font for the digits and capitals that box scores and PR-plot labels need: a font file and a text
//! renderer crate would add a build dependency and system-font lookups for a few short labels.

use image::{Rgb, RgbImage};

/// Rows of 3 bits (bit 2 = left column); `None` for a character without a glyph.
pub fn glyph(ch: char) -> Option<[u8; 5]> {
    Some(match ch.to_ascii_uppercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        ':' => [0, 2, 0, 2, 0],
        ' ' => [0; 5],
        'A' => [2, 5, 7, 5, 5],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'U' => [5, 5, 5, 5, 7],
        'Y' => [5, 5, 2, 2, 2],
        _ => return None,
    })
}

/// Width in pixels of `s` at glyph scale `k` (3 columns and 1 of spacing per character, 1 of margin).
pub fn width(s: &str, k: i64) -> i64 {
    s.chars().count() as i64 * 4 * k + k
}

/// Height in pixels of a line at scale `k` (5 rows and 1 of margin above and below).
pub fn height(k: i64) -> i64 {
    7 * k
}

/// Draws `s` with its top-left corner at (x, y), on `bg` when given; pixels outside the image are skipped.
pub fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, k: i64, fg: Rgb<u8>, bg: Option<Rgb<u8>>) {
    let mut put = |px: i64, py: i64, c: Rgb<u8>| {
        if px >= 0
            && py >= 0
            && (px as u64) < img.width() as u64
            && (py as u64) < img.height() as u64
        {
            img.put_pixel(px as u32, py as u32, c);
        }
    };
    if let Some(bg) = bg {
        for py in y..y + height(k) {
            for px in x..x + width(s, k) {
                put(px, py, bg);
            }
        }
    }
    for (i, ch) in s.chars().enumerate() {
        let Some(g) = glyph(ch) else { continue };
        let gx = x + k + i as i64 * 4 * k;
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3 {
                if bits >> (2 - col) & 1 == 1 {
                    for dy in 0..k {
                        for dx in 0..k {
                            put(gx + col * k + dx, y + k + row as i64 * k + dy, fg);
                        }
                    }
                }
            }
        }
    }
}
