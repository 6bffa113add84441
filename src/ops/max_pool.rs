//! Max pooling with Caffe's ceil mode (SSH's VGG-16 pools) or floor mode.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub h: u32,
    pub w: u32,
    pub ho: u32,
    pub wo: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    pub ph: u32,
    pub pw: u32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 48);

impl Params {
    /// The window geometry of `pool` from `[h, w]` to `[ho, wo]`, over `len` threads (max_pool.wgsl and, for the
    /// backward, max_pool_grad.wgsl, whose `Params` structs are the same).
    pub fn new(len: usize, [h, w]: [usize; 2], [ho, wo]: [usize; 2], pool: &Pool) -> Params {
        let u = |v: usize| v as u32;
        Params {
            len: u(len),
            h: u(h),
            w: u(w),
            ho: u(ho),
            wo: u(wo),
            kh: u(pool.kernel[0]),
            kw: u(pool.kernel[1]),
            sh: u(pool.stride[0]),
            sw: u(pool.stride[1]),
            ph: u(pool.pad[0]),
            pw: u(pool.pad[1]),
            _pad: 0,
        }
    }
}

pub static SHADER: Shader = crate::shader!("max_pool", Params);
pub static SHADER_F16: Shader = crate::shader_f16!("max_pool", Params);

/// A pooling window: sizes are (y, x); padding is symmetric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Symmetric padding (y, x).
    pub pad: [usize; 2],
    /// Caffe's output size rule (round up) instead of floor.
    pub ceil_mode: bool,
}

impl Pool {
    /// Output size `[Ho, Wo]` for an `[H, W]` input, or an error naming `label` when the window does not fit
    /// or some window would lie entirely in the padding (its max would be undefined).
    pub fn output_hw(&self, label: &str, hw: [usize; 2]) -> Result<[usize; 2]> {
        let mut out = [0; 2];
        for (d, axis) in ["height", "width"].iter().enumerate() {
            let (n, k, s, p) = (hw[d], self.kernel[d], self.stride[d], self.pad[d]);
            if k == 0 || s == 0 {
                return Err(Error::shape(
                    label,
                    format!(
                        "max_pool kernel {:?} and stride {:?} must be at least 1",
                        self.kernel, self.stride
                    ),
                ));
            }
            if p >= k {
                return Err(Error::shape(
                    label,
                    format!("max_pool pad {p} must be smaller than the kernel {k} along the {axis}, or a window sees only padding"),
                ));
            }
            // Caffe's ceil mode still yields one clipped window when the kernel overhangs the padded input by
            // less than a stride (SSH's k2 s2 pool on a 1-pixel map); floor mode yields none.
            let span = (n + 2 * p) as isize - k as isize;
            let too_big = if self.ceil_mode {
                span <= -(s as isize)
            } else {
                span < 0
            };
            if too_big {
                return Err(Error::shape(
                    label,
                    format!(
                        "max_pool kernel {k} is larger than the padded input {axis} {n} + 2·{p} = {}{} (input {hw:?}, kernel {:?}, stride {:?}, pad {:?}, ceil_mode {})",
                        n + 2 * p,
                        if self.ceil_mode { format!(" plus less than one stride {s}") } else { String::new() },
                        self.kernel,
                        self.stride,
                        self.pad,
                        self.ceil_mode
                    ),
                ));
            }
            let mut o = if span <= 0 {
                1
            } else if self.ceil_mode {
                (span as usize).div_ceil(s) + 1
            } else {
                span as usize / s + 1
            };
            // Caffe (pooling_layer.cpp): the last window must start inside the image, not in the padding.
            if self.ceil_mode && p > 0 && (o - 1) * s >= n + p {
                o -= 1;
            }
            // Only reachable in ceil mode with stride > kernel and no padding; Caffe would emit -FLT_MAX here.
            if (o - 1) * s >= n + p {
                return Err(Error::shape(
                    label,
                    format!("max_pool: the last window along the {axis} starts at {} past the input {axis} {n} (kernel {k}, stride {s}, pad {p})", (o - 1) * s - p),
                ));
            }
            out[d] = o;
        }
        Ok(out)
    }
}

/// Max pooling of `x` `[N, C, H, W]` into `[N, C, Ho, Wo]`.
///
/// Floor mode: Ho = (H + 2p − k)/s + 1. Ceil mode (Caffe): Ho = ceil((H + 2p − k)/s) + 1, then if p > 0 and
/// (Ho − 1)·s ≥ H + p, Ho −= 1 (C: caffe `pooling_layer.cpp`). Windows are clipped to the input, so padding
/// never wins the max. Errors when the kernel exceeds the padded input (in ceil mode: by a stride or more, as
/// Caffe allows one clipped window, e.g. k2 s2 on a 1×1 map) or a window would be all padding.
pub fn max_pool(g: &mut Graph, label: &str, x: TensorId, pool: &Pool) -> Result<TensorId> {
    let [n, c, h, w] = g.nchw(label, x)?;
    let [ho, wo] = pool.output_hw(label, [h, w])?;
    let dtype = g.dtype(x);
    let out = g.tensor_as(label, &[n, c, ho, wo], dtype)?;
    let len = n * c * ho * wo;
    g.push(StepDesc {
        label: label.to_string(),
        shader: crate::ops::variant(dtype, &SHADER, &SHADER_F16),
        entry: "max_pool",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params::new(len, [h, w], [ho, wo], pool)).to_vec(),
        bindings: vec![x.into(), out.into()],
        workgroups: dispatch_1d(len, WG),
        flops: (len * pool.kernel[0] * pool.kernel[1]) as u64,
    });
    Ok(out)
}
