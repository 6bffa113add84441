//! Backward of [`max_pool`](crate::ops::max_pool::max_pool) (Caffe's MAX pooling, ceil or floor mode), f32.

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::max_pool::{Params, Pool};
use crate::ops::{Shader, WG};

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
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "max_pool_grad",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params::new(len, [h, w], [ho, wo], pool)).to_vec(),
        bindings: vec![x.into(), dy.into(), out.into()],
        workgroups: dispatch_1d(len, WG),
        flops: 0,
    });
    Ok(out)
}
