//! Reference of `shaders/upsample_bilinear.wgsl`, written as what Caffe runs: a depthwise transposed
//! convolution (kernel 4, stride 2, pad 1) with the bilinear filler's kernel, then a top-left crop.
//! It deliberately shares nothing with the shader's closed form.

use crate::reference::CpuTensor;

const K: usize = 4;
const STRIDE: usize = 2;
const PAD: usize = 1;

/// The `K`×`K` kernel of Caffe's `BilinearFiller` (include/caffe/filler.hpp):
/// `f = ceil(k/2)`, `c = (k − 1)/(2f)`, `w[i] = 1 − |i/f − c|`, `kernel[y][x] = w[y]·w[x]`.
pub fn bilinear_kernel() -> [[f32; K]; K] {
    let f = (K as f64 / 2.0).ceil();
    let c = (K as f64 - 1.0) / (2.0 * f);
    let tap = |i: usize| 1.0 - (i as f64 / f - c).abs();
    let mut k = [[0.0f32; K]; K];
    for (y, row) in k.iter_mut().enumerate() {
        for (x, v) in row.iter_mut().enumerate() {
            *v = (tap(y) * tap(x)) as f32;
        }
    }
    k
}

/// `[N, C, H, W]` -> `[N, C, Ho, Wo]`: the full `[2H, 2W]` deconvolution output cropped to `out_hw`.
pub fn upsample_bilinear(x: &CpuTensor, out_hw: [usize; 2]) -> CpuTensor {
    let [n, c, h, w] = x.nchw();
    let kernel = bilinear_kernel();
    // Caffe's deconvolution output size: (in − 1)·s + k − 2p.
    let (fh, fw) = (
        (h - 1) * STRIDE + K - 2 * PAD,
        (w - 1) * STRIDE + K - 2 * PAD,
    );
    let mut full = CpuTensor::zeros(&[n, c, fh, fw]);
    for b in 0..n {
        for ch in 0..c {
            for iy in 0..h {
                for ix in 0..w {
                    let v = x.at(b, ch, iy, ix);
                    for (ky, krow) in kernel.iter().enumerate() {
                        for (kx, &kv) in krow.iter().enumerate() {
                            let oy = (iy * STRIDE + ky) as isize - PAD as isize;
                            let ox = (ix * STRIDE + kx) as isize - PAD as isize;
                            if oy < 0 || ox < 0 || oy as usize >= fh || ox as usize >= fw {
                                continue;
                            }
                            let o = ((b * c + ch) * fh + oy as usize) * fw + ox as usize;
                            full.data[o] += v * kv;
                        }
                    }
                }
            }
        }
    }
    let [ho, wo] = out_hw;
    assert!(
        ho <= fh && wo <= fw,
        "crop {out_hw:?} larger than [{fh}, {fw}]"
    );
    let mut out = CpuTensor::zeros(&[n, c, ho, wo]);
    let mut i = 0;
    for b in 0..n {
        for ch in 0..c {
            for y in 0..ho {
                for xx in 0..wo {
                    out.data[i] = full.at(b, ch, y, xx);
                    i += 1;
                }
            }
        }
    }
    out
}
