//! Reference of `shaders/conv2d.wgsl`: direct convolution with f64 accumulation, so the oracle's own
//! rounding is far below the GPU's f32 summation error the tests allow for.

use crate::ops::Activation;
use crate::reference::CpuTensor;

/// `act(conv(x) + bias + residual)` for `x` [N, C_in, H, W] and `w` [C_out, C_in/groups, KH, KW];
/// returns [N, C_out, Ho, Wo] with Ho = (H + top + bottom − dy·(KH−1) − 1)/sy + 1.
/// `pad` is (top, bottom, left, right); `stride` and `dilation` are (y, x). Panics on inconsistent shapes.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &CpuTensor,
    w: &CpuTensor,
    bias: Option<&[f32]>,
    stride: [usize; 2],
    pad: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
    act: Activation,
    residual: Option<&CpuTensor>,
) -> CpuTensor {
    let [n, c_in, h, wd] = x.nchw();
    let [c_out, cin_g, kh, kw] = w.nchw();
    assert_eq!(
        cin_g * groups,
        c_in,
        "weight {:?} vs input {:?}",
        w.shape,
        x.shape
    );
    assert_eq!(c_out % groups, 0);
    let ho = (h + pad[0] + pad[1] - dilation[0] * (kh - 1) - 1) / stride[0] + 1;
    let wo = (wd + pad[2] + pad[3] - dilation[1] * (kw - 1) - 1) / stride[1] + 1;
    let cout_g = c_out / groups;
    let mut out = CpuTensor::zeros(&[n, c_out, ho, wo]);
    if let Some(r) = residual {
        assert_eq!(r.shape, out.shape);
    }
    // Loops run weight-outer, pixels-inner (fast enough for whole networks), yet every output still sums its
    // products in (ci, ky, kx) order in f64, so the values are those of the plain per-output loop.
    let mut acc = vec![0f64; ho * wo];
    for b in 0..n {
        for co in 0..c_out {
            let grp = co / cout_g;
            acc.iter_mut().for_each(|a| *a = 0.0);
            for ci in 0..cin_g {
                let plane = &x.data[((b * c_in + grp * cin_g + ci) * h) * wd..][..h * wd];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let wv = w.data[((co * cin_g + ci) * kh + ky) * kw + kx] as f64;
                        // Output columns whose input column ix = ox·sx + kx·dx − left lies in [0, W).
                        let off = (kx * dilation[1]) as isize - pad[2] as isize;
                        let lo = if off >= 0 {
                            0
                        } else {
                            (-off as usize).div_ceil(stride[1])
                        };
                        let hi = if (wd as isize) > off {
                            ((wd as isize - off) as usize).div_ceil(stride[1]).min(wo)
                        } else {
                            0
                        };
                        for oy in 0..ho {
                            let iy = (oy * stride[0] + ky * dilation[0]) as isize - pad[0] as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let row = &plane[iy as usize * wd..][..wd];
                            let a = &mut acc[oy * wo..][..wo];
                            for (ox, av) in a.iter_mut().enumerate().take(hi).skip(lo) {
                                let ix = (ox * stride[1]) as isize + off;
                                *av += wv * row[ix as usize] as f64;
                            }
                        }
                    }
                }
            }
            let base = (b * c_out + co) * ho * wo;
            for (j, &s) in acc.iter().enumerate() {
                let mut v = s as f32;
                if let Some(bs) = bias {
                    v += bs[co];
                }
                if let Some(r) = residual {
                    v += r.data[base + j];
                }
                out.data[base + j] = act.apply(v);
            }
        }
    }
    out
}
