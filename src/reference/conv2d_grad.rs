//! Reference of `shaders/conv2d_grad.wgsl`: the adjoints of [`conv2d`](crate::reference::conv2d::conv2d)
//! written as its scatter (every forward product `w · x` sends `dy` back to both), accumulated in f64.

use crate::reference::CpuTensor;

/// Conv geometry as [`conv2d`](crate::reference::conv2d::conv2d) takes it: stride and dilation (y, x),
/// pad (top, bottom, left, right), groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub stride: [usize; 2],
    pub pad: [usize; 4],
    pub dilation: [usize; 2],
    pub groups: usize,
}

/// Calls `f(x index, w index, dy index)` for every product of the forward conv of an input of shape
/// `input` with weights of shape `wshape`, in (n, co, oy, ox, ci, ky, kx) order.
fn for_each_product(
    input: [usize; 4],
    wshape: [usize; 4],
    geo: &Geometry,
    mut f: impl FnMut(usize, usize, usize),
) -> [usize; 4] {
    let [n, c_in, h, w] = input;
    let [c_out, cin_g, kh, kw] = wshape;
    assert_eq!(
        cin_g * geo.groups,
        c_in,
        "weight {wshape:?} vs input {input:?}"
    );
    let [sy, sx] = geo.stride;
    let [dy, dx] = geo.dilation;
    let [pt, pb, pl, pr] = geo.pad;
    let ho = (h + pt + pb - dy * (kh - 1) - 1) / sy + 1;
    let wo = (w + pl + pr - dx * (kw - 1) - 1) / sx + 1;
    let cout_g = c_out / geo.groups;
    let mut o = 0;
    for b in 0..n {
        for co in 0..c_out {
            let grp = co / cout_g;
            for oy in 0..ho {
                for ox in 0..wo {
                    for ci in 0..cin_g {
                        for ky in 0..kh {
                            let iy = (oy * sy + ky * dy) as isize - pt as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (ox * sx + kx * dx) as isize - pl as isize;
                                if ix < 0 || ix >= w as isize {
                                    continue;
                                }
                                let xi = (((b * c_in + grp * cin_g + ci) * h) + iy as usize) * w
                                    + ix as usize;
                                let wi = ((co * cin_g + ci) * kh + ky) * kw + kx;
                                f(xi, wi, o);
                            }
                        }
                    }
                    o += 1;
                }
            }
        }
    }
    [n, c_out, ho, wo]
}

fn check_dy(dy: &CpuTensor, out: [usize; 4]) {
    assert_eq!(dy.shape, out, "dy shape vs the conv's output shape");
}

/// Input gradient `[N, C_in, H, W]` for an input of shape `input`, weights `w` and output gradient `dy`.
pub fn conv2d_grad_input(
    dy: &CpuTensor,
    w: &CpuTensor,
    input: [usize; 4],
    geo: &Geometry,
) -> CpuTensor {
    let mut acc = vec![0f64; input.iter().product()];
    let out = for_each_product(input, w.nchw(), geo, |xi, wi, o| {
        acc[xi] += w.data[wi] as f64 * dy.data[o] as f64;
    });
    check_dy(dy, out);
    CpuTensor::new(&input, acc.into_iter().map(|v| v as f32).collect())
}

/// Weight gradient (shape of `wshape`) and bias gradient `[C_out]` from the forward input `x` and `dy`.
pub fn conv2d_grad_params(
    x: &CpuTensor,
    dy: &CpuTensor,
    wshape: [usize; 4],
    geo: &Geometry,
) -> (CpuTensor, Vec<f32>) {
    let mut acc = vec![0f64; wshape.iter().product()];
    let out = for_each_product(x.nchw(), wshape, geo, |xi, wi, o| {
        acc[wi] += x.data[xi] as f64 * dy.data[o] as f64;
    });
    check_dy(dy, out);
    let [n, c_out, ho, wo] = out;
    let db = (0..c_out)
        .map(|co| {
            let s: f64 = (0..n)
                .flat_map(|b| dy.data[(b * c_out + co) * ho * wo..][..ho * wo].iter())
                .map(|&v| v as f64)
                .sum();
            s as f32
        })
        .collect();
    (
        CpuTensor::new(&wshape, acc.into_iter().map(|v| v as f32).collect()),
        db,
    )
}
