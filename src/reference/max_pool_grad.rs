//! Reference of `shaders/max_pool_grad.wgsl`, transcribed from Caffe's `PoolingLayer` (MAX) on the CPU: the
//! forward pass records each window's mask (the first index whose value is `>` the running max, which starts
//! at −FLT_MAX), the backward pass scatters `dy` to the masks in output order.

use crate::ops::max_pool::Pool;
use crate::reference::CpuTensor;

/// Input gradient of `x` `[N, C, H, W]` for output gradient `dy` (the shape of
/// [`max_pool`](crate::reference::max_pool::max_pool)`(x, pool)`).
pub fn max_pool_grad(x: &CpuTensor, dy: &CpuTensor, pool: &Pool) -> CpuTensor {
    let [n, c, h, w] = x.nchw();
    let [_, _, ho, wo] = dy.nchw();
    assert_eq!(
        crate::reference::max_pool::max_pool(x, pool).shape,
        dy.shape,
        "dy shape vs the pool's output"
    );
    let [kh, kw] = pool.kernel;
    let [sh, sw] = pool.stride;
    let [ph, pw] = pool.pad;
    let mut dx = CpuTensor::zeros(&[n, c, h, w]);
    for plane in 0..n * c {
        let xs = &x.data[plane * h * w..][..h * w];
        for oy in 0..ho {
            for ox in 0..wo {
                let hstart = (oy * sh) as isize - ph as isize;
                let wstart = (ox * sw) as isize - pw as isize;
                let hend = (hstart + kh as isize)
                    .min((h + ph) as isize)
                    .min(h as isize);
                let wend = (wstart + kw as isize)
                    .min((w + pw) as isize)
                    .min(w as isize);
                let mut m = -f32::MAX;
                let mut mask = None;
                for y in hstart.max(0)..hend {
                    for xx in wstart.max(0)..wend {
                        let i = y as usize * w + xx as usize;
                        if xs[i] > m {
                            m = xs[i];
                            mask = Some(i);
                        }
                    }
                }
                if let Some(i) = mask {
                    dx.data[plane * h * w + i] += dy.data[(plane * ho + oy) * wo + ox];
                }
            }
        }
    }
    dx
}
