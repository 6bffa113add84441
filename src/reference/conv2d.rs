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
    let mut i = 0;
    for b in 0..n {
        for co in 0..c_out {
            let grp = co / cout_g;
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = 0f64;
                    for ci in 0..cin_g {
                        for ky in 0..kh {
                            let iy = (oy * stride[0] + ky * dilation[0]) as isize - pad[0] as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix =
                                    (ox * stride[1] + kx * dilation[1]) as isize - pad[2] as isize;
                                if ix < 0 || ix >= wd as isize {
                                    continue;
                                }
                                let xv = x.at(b, grp * cin_g + ci, iy as usize, ix as usize);
                                acc += w.at(co, ci, ky, kx) as f64 * xv as f64;
                            }
                        }
                    }
                    let mut v = acc as f32;
                    if let Some(bs) = bias {
                        v += bs[co];
                    }
                    if let Some(r) = residual {
                        v += r.data[i];
                    }
                    out.data[i] = act.apply(v);
                    i += 1;
                }
            }
        }
    }
    out
}
