//! Anchor geometry on the CPU, with the reference implementations' arithmetic: retinaface-mnv2 priors
//! (docs/spec/retinaface-mnv2.md §6) and py-faster-rcnn base anchors (docs/spec/ssh-vgg16.md §4). `shaders/decode.wgsl` computes the
//! same values from the row index; these functions serve the CPU reference, tests and `--dump priors`.

/// The prior of cell (x, y) of a level with step `stride` and min size `m` on a padded input (H, W):
/// `[((x + 0.5)·s)/W, ((y + 0.5)·s)/H, m/W, m/H]`, in f32 in that order (as the TF graph computes it).
pub fn ssd_prior(input_hw: [usize; 2], stride: usize, x: usize, y: usize, m: f32) -> [f32; 4] {
    let (h, w) = (input_hw[0] as f32, input_hw[1] as f32);
    let s = stride as f32;
    [
        ((x as f32 + 0.5) * s) / w,
        ((y as f32 + 0.5) * s) / h,
        m / w,
        m / h,
    ]
}

/// Priors `[cx, cy, w, h]` (normalised by the padded size) of every level `(step, [m0, m1])`, rows in
/// (level, y, x, a) order with fh = ceil(H/step), fw = ceil(W/step).
pub fn ssd_priors(input_hw: [usize; 2], levels: &[(usize, [f32; 2])]) -> Vec<[f32; 4]> {
    let mut out = Vec::new();
    for &(step, sizes) in levels {
        let fh = input_hw[0].div_ceil(step);
        let fw = input_hw[1].div_ceil(step);
        for y in 0..fh {
            for x in 0..fw {
                for m in sizes {
                    out.push(ssd_prior(input_hw, step, x, y, m));
                }
            }
        }
    }
    out
}

/// py-faster-rcnn `generate_anchors(base_size=16, ratios=[1], scales)`: per scale the square
/// `(x1, y1, x2, y2)` of side 16·scale centred at 7.5. Computed in f64 as numpy does, then cast to f32.
pub fn rcnn_base_anchors(scales: &[f32]) -> Vec<[f32; 4]> {
    // With ratio 1, `_ratio_enum` returns the base box [0, 0, 15, 15] unchanged (w = h = 16, centre 7.5).
    let (w, ctr) = (16.0f64, 7.5f64);
    scales
        .iter()
        .map(|&s| {
            let ws = w * s as f64;
            let lo = (ctr - 0.5 * (ws - 1.0)) as f32;
            let hi = (ctr + 0.5 * (ws - 1.0)) as f32;
            [lo, lo, hi, hi]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssd_priors_count_is_21_hw_over_512() {
        let levels = [(8, [16.0, 32.0]), (16, [64.0, 128.0]), (32, [256.0, 512.0])];
        assert_eq!(ssd_priors([512, 512], &levels).len(), 10_752);
        assert_eq!(ssd_priors([608, 512], &levels).len(), 12_768);
    }
}
