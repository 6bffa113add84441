//! Backward of [`max_pool`](crate::ops::max_pool::max_pool) (Caffe's MAX pooling, ceil or floor mode), f32.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::max_pool::Pool;
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

pub static SHADER: Shader = crate::shader!("max_pool_grad", Params);

/// Input gradient `[N, C, H, W]` of max pooling `x` `[N, C, H, W]` with `pool`, from the output gradient
/// `dy` `[N, C, Ho, Wo]`: each window's `dy` goes to its FIRST maximum in row-major order (Caffe's mask:
/// strict `>`, so among tied values the earliest wins), summed where windows overlap. The maxima are
/// recomputed from `x`, so no mask is stored by the forward pass.
pub fn max_pool_grad(
    g: &mut Graph,
    label: &str,
    x: TensorId,
    dy: TensorId,
    pool: &Pool,
) -> Result<TensorId> {
    let [n, c, h, w] = g.nchw(label, x)?;
    let [ho, wo] = pool.output_hw(label, [h, w])?;
    crate::ops::relu_grad::f32_maps(g, label, &[x])?;
    if g.shape(dy) != [n, c, ho, wo] {
        return Err(Error::shape(
            label,
            format!(
                "output gradient '{}' has shape {:?}, expected the pool's output shape {:?} for input {:?}",
                g.info(dy).name,
                g.shape(dy),
                [n, c, ho, wo],
                [n, c, h, w]
            ),
        ));
    }
    crate::ops::relu_grad::f32_maps(g, label, &[dy])?;
    let out = g.tensor(label, &[n, c, h, w])?;
    let len = n * c * h * w;
    let u = |v: usize| v as u32;
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "max_pool_grad",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params {
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
        })
        .to_vec(),
        bindings: vec![x.into(), dy.into(), out.into()],
        workgroups: dispatch_1d(len, WG),
        flops: 0,
    });
    Ok(out)
}
