//! Reference of `shaders/upsample_nearest.wgsl`, transcribed from TF's `resize_nearest_neighbor_op.cc`
//! (align_corners = false, half_pixel_centers = true), f32 arithmetic as TF.

use crate::reference::CpuTensor;

/// The source index of output index `dst` along an axis resized from `n_in` to `n_out`.
pub fn nearest_src(dst: usize, n_in: usize, n_out: usize) -> usize {
    let scale = n_in as f32 / n_out as f32;
    let s = ((dst as f32 + 0.5) * scale).floor() as usize;
    s.min(n_in - 1)
}

/// `[N, C, H, W]` -> `[N, C, out_hw[0], out_hw[1]]`.
pub fn upsample_nearest(x: &CpuTensor, out_hw: [usize; 2]) -> CpuTensor {
    let [n, c, h, w] = x.nchw();
    let [ho, wo] = out_hw;
    let mut out = CpuTensor::zeros(&[n, c, ho, wo]);
    let mut i = 0;
    for b in 0..n {
        for ch in 0..c {
            for y in 0..ho {
                for xx in 0..wo {
                    out.data[i] = x.at(b, ch, nearest_src(y, h, ho), nearest_src(xx, w, wo));
                    i += 1;
                }
            }
        }
    }
    out
}
