//! The PR-curve plot of `eval --gt`: precision over recall for each setting with its AP in the legend, drawn with
//! plain pixel loops and the built-in font (a plotting crate's text needs a font file or system fonts).

use image::{Rgb, RgbImage};

use super::font;

const W: u32 = 720;
const H: u32 = 540;
/// Plot area: left, top, right, bottom margins in pixels.
const L: i64 = 70;
const T: i64 = 30;
const R: i64 = 30;
const B: i64 = 60;
const COLOURS: [Rgb<u8>; 3] = [Rgb([31, 119, 180]), Rgb([255, 127, 14]), Rgb([44, 160, 44])];
const INK: Rgb<u8> = Rgb([0, 0, 0]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && x < W as i64 && y < H as i64 {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// A line 2 px thick between two pixel positions (enough samples that no pixel is skipped).
fn line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), c: Rgb<u8>, thick: i64) {
    let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as i64).max(1);
    for k in 0..=n {
        let t = k as f64 / n as f64;
        let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        for d in 0..thick {
            for e in 0..thick {
                put(img, x.round() as i64 + d, y.round() as i64 + e, c);
            }
        }
    }
}

/// Pixel position of (recall, precision).
fn at(recall: f64, precision: f64) -> (f64, f64) {
    let (pw, ph) = ((W as i64 - L - R) as f64, (H as i64 - T - B) as f64);
    (L as f64 + recall * pw, T as f64 + (1.0 - precision) * ph)
}

/// The plot of `curves`: (label, AP, [(precision, recall)] per threshold); points with an undefined precision
/// (no proposals yet) are skipped.
pub fn plot(curves: &[(&str, f64, &[[f64; 2]])]) -> RgbImage {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    for k in 0..=10 {
        let v = k as f64 / 10.0;
        line(&mut img, at(v, 0.0), at(v, 1.0), GRID, 1);
        line(&mut img, at(0.0, v), at(1.0, v), GRID, 1);
        let label = format!("{v:.1}");
        let (x, y) = at(v, 0.0);
        font::text(
            &mut img,
            x as i64 - font::width(&label, 2) / 2,
            y as i64 + 6,
            &label,
            2,
            INK,
            None,
        );
        let (x, y) = at(0.0, v);
        font::text(
            &mut img,
            x as i64 - font::width(&label, 2) - 4,
            y as i64 - 7,
            &label,
            2,
            INK,
            None,
        );
    }
    line(&mut img, at(0.0, 0.0), at(1.0, 0.0), INK, 2);
    line(&mut img, at(0.0, 0.0), at(0.0, 1.0), INK, 2);
    let (x, y) = at(0.5, 0.0);
    font::text(
        &mut img,
        x as i64 - font::width("RECALL", 3) / 2,
        y as i64 + 28,
        "RECALL",
        3,
        INK,
        None,
    );
    font::text(&mut img, 4, 6, "PRECISION", 3, INK, None);
    for (k, (_, _, pts)) in curves.iter().enumerate() {
        let c = COLOURS[k % COLOURS.len()];
        let valid: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite())
            .map(|p| at(p[1], p[0]))
            .collect();
        for w in valid.windows(2) {
            line(&mut img, w[0], w[1], c, 2);
        }
    }
    // Legend at the bottom left, where PR curves of face detectors rarely pass.
    for (k, (name, ap, _)) in curves.iter().enumerate() {
        let c = COLOURS[k % COLOURS.len()];
        let (x, y) = at(0.04, 0.08 + 0.09 * (curves.len() - 1 - k) as f64);
        line(&mut img, (x, y + 9.0), (x + 30.0, y + 9.0), c, 3);
        let label = format!("{name} AP {ap:.4}");
        font::text(
            &mut img,
            x as i64 + 38,
            y as i64,
            &label,
            3,
            INK,
            Some(Rgb([255, 255, 255])),
        );
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_drawn_in_their_colours_where_their_points_are() {
        let curve: Vec<[f64; 2]> = (0..=100)
            .map(|i| [1.0 - i as f64 / 200.0, i as f64 / 100.0])
            .collect();
        let img = plot(&[("EASY", 0.9, &curve)]);
        assert_eq!(img.dimensions(), (W, H));
        let (x, y) = at(0.5, 0.75);
        assert_eq!(
            img.get_pixel(x.round() as u32, y.round() as u32),
            &COLOURS[0]
        );
        let (x, y) = at(0.5, 0.3);
        assert_ne!(
            img.get_pixel(x.round() as u32, y.round() as u32),
            &COLOURS[0]
        );
    }
}
