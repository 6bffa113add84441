//! Row bands of feature maps: `x [N, C, H_src, W]` rows `src_row..src_row + rows` → `out [N, C, H_dst, W]` rows
//! `dst_row..`. Used to run the high-resolution layers in row strips when a full map exceeds one storage binding.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::{Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub c: u32,
    pub w: u32,
    pub rows: u32,
    pub h_src: u32,
    pub src_row: u32,
    pub h_dst: u32,
    pub dst_row: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

pub static SHADER: Shader = crate::shader!("copy_rows", Params);
pub static SHADER_F16: Shader = crate::shader_f16!("copy_rows", Params);

/// Appends a copy of `rows` rows of `x` starting at `src_row` into `out` starting at `dst_row` (same N, C, W).
pub fn copy_rows(
    g: &mut Graph,
    label: &str,
    x: TensorId,
    src_row: usize,
    out: TensorId,
    dst_row: usize,
    rows: usize,
) -> Result<()> {
    let [n, c, hs, w] = g.nchw(label, x)?;
    let [n2, c2, hd, w2] = g.nchw(label, out)?;
    let dtype = g.same_dtype(label, &[x, out])?;
    if (n, c, w) != (n2, c2, w2) {
        return Err(Error::shape(
            label,
            format!(
                "copy_rows needs equal N, C, W: '{}' {:?} vs '{}' {:?}",
                g.info(x).name,
                g.shape(x),
                g.info(out).name,
                g.shape(out)
            ),
        ));
    }
    if rows == 0 || src_row + rows > hs || dst_row + rows > hd {
        return Err(Error::shape(
            label,
            format!(
                "copy_rows of {rows} rows from row {src_row} of '{}' ({hs} rows) to row {dst_row} of '{}' ({hd} rows) is out of range",
                g.info(x).name,
                g.info(out).name
            ),
        ));
    }
    let len = n * c * rows * w;
    let u = |v: usize| v as u32;
    g.push(StepDesc {
        label: label.to_string(),
        shader: crate::ops::variant(dtype, &SHADER, &SHADER_F16),
        entry: "copy_rows",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params {
            len: u(len),
            c: u(c),
            w: u(w),
            rows: u(rows),
            h_src: u(hs),
            src_row: u(src_row),
            h_dst: u(hd),
            dst_row: u(dst_row),
        })
        .to_vec(),
        bindings: vec![x.into(), out.into()],
        workgroups: dispatch_1d(len, WG),
        flops: 0,
    });
    Ok(())
}
