//! Reference of `shaders/max_pool.wgsl`, transcribed from Caffe's `PoolingLayer` (MAX): the output size with
//! Caffe's float `ceil`, windows `[start, min(start + k, H + p))` clipped to `[0, H)`, max from −FLT_MAX.

use crate::ops::max_pool::Pool;
use crate::reference::CpuTensor;

fn out_size(n: usize, k: usize, s: usize, p: usize, ceil_mode: bool) -> usize {
    let span = ((n + 2 * p) as f32 - k as f32) / s as f32;
    let mut o = if ceil_mode { span.ceil() } else { span.floor() } as usize + 1;
    if p > 0 && (o - 1) * s >= n + p {
        o -= 1;
    }
    o
}

/// `[N, C, H, W]` -> `[N, C, Ho, Wo]`. Panics on windows that do not fit (the launcher reports those).
pub fn max_pool(x: &CpuTensor, pool: &Pool) -> CpuTensor {
    let [n, c, h, w] = x.nchw();
    let [kh, kw] = pool.kernel;
    let [sh, sw] = pool.stride;
    let [ph, pw] = pool.pad;
    let ho = out_size(h, kh, sh, ph, pool.ceil_mode);
    let wo = out_size(w, kw, sw, pw, pool.ceil_mode);
    let mut out = CpuTensor::zeros(&[n, c, ho, wo]);
    let mut i = 0;
    for b in 0..n {
        for ch in 0..c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let hstart = (oy * sh) as isize - ph as isize;
                    let wstart = (ox * sw) as isize - pw as isize;
                    let hend = (hstart + kh as isize).min((h + ph) as isize);
                    let wend = (wstart + kw as isize).min((w + pw) as isize);
                    let (hstart, wstart) = (hstart.max(0) as usize, wstart.max(0) as usize);
                    let (hend, wend) =
                        (hend.min(h as isize) as usize, wend.min(w as isize) as usize);
                    assert!(hstart < hend && wstart < wend, "empty pooling window");
                    let mut m = -f32::MAX;
                    for y in hstart..hend {
                        for xx in wstart..wend {
                            m = m.max(x.at(b, ch, y, xx));
                        }
                    }
                    out.data[i] = m;
                    i += 1;
                }
            }
        }
    }
    out
}
