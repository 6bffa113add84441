//! Reference of `shaders/upsample_bilinear_grad.wgsl`, written as the transpose of
//! [`upsample_bilinear`](crate::reference::upsample_bilinear::upsample_bilinear): each kept output element
//! scatters its gradient back along the deconvolution taps (kernel 4, stride 2, pad 1, Caffe's bilinear
//! kernel) that wrote it. The crop's dropped rows and columns have no gradient, so they are simply absent.
//! The shader gathers per input with the closed-form weights instead; the two share nothing but the map.

use crate::reference::upsample_bilinear::bilinear_kernel;
use crate::reference::CpuTensor;

/// The input `i` along one axis of size `n` that tap `k` (0..4) of output `o` comes from: the forward wrote
/// output `i·2 + k − 1` from input `i`, so `i = (o + 1 − k) / 2` when that is a whole index inside the input.
fn source(o: usize, k: usize, n: usize) -> Option<usize> {
    let twice = (o + 1).checked_sub(k)?;
    (twice % 2 == 0 && twice / 2 < n).then_some(twice / 2)
}

/// `dy` `[N, C, Ho, Wo]` (Ho ≤ 2H, Wo ≤ 2W) -> `dx` `[N, C, H, W]` of shape `x_shape`.
pub fn upsample_bilinear_grad(dy: &CpuTensor, x_shape: [usize; 4]) -> CpuTensor {
    let [n, c, h, w] = x_shape;
    let [dn, dc, ho, wo] = dy.nchw();
    assert!(
        [dn, dc] == [n, c] && ho <= 2 * h && wo <= 2 * w,
        "dy shape {:?} is not a crop of the ×2 upsampling of {x_shape:?}",
        dy.shape
    );
    let kernel = bilinear_kernel();
    let mut dx = CpuTensor::zeros(&x_shape);
    for b in 0..n {
        for ch in 0..c {
            let plane = (b * c + ch) * h * w;
            for oy in 0..ho {
                for ox in 0..wo {
                    let d = dy.at(b, ch, oy, ox);
                    for (ky, krow) in kernel.iter().enumerate() {
                        let Some(iy) = source(oy, ky, h) else {
                            continue;
                        };
                        for (kx, &kv) in krow.iter().enumerate() {
                            if let Some(ix) = source(ox, kx, w) {
                                dx.data[plane + iy * w + ix] += d * kv;
                            }
                        }
                    }
                }
            }
        }
    }
    dx
}
