//! In-place bitonic sort of `[N, len, 2]` u32 records `(group << 27 | index, key)` by (group, key, index), per image.
//! `len` must be a power of two; pad with `u32::MAX` records, which sort last.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Graph, StepDesc, TensorId};
use crate::ops::Shader;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub len: u32,
    pub k_lo: u32,
    pub k_hi: u32,
    pub j: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

pub static SHADER: Shader = crate::shader!("sort", Params);

/// Largest workgroup; `sort_local` keeps 2·WG records in workgroup memory (its `tile` holds 512).
const MAX_WG: usize = 256;

/// Appends the passes that sort every image's records of `recs` (`[N, len, 2]`, len a power of two ≥ 2).
pub fn sort(g: &mut Graph, label: &str, recs: TensorId) -> Result<()> {
    let shape = g.shape(recs).to_vec();
    let [n, len, two] = <[usize; 3]>::try_from(shape.as_slice()).map_err(|_| {
        Error::shape(
            label,
            format!("sort records must be [N, len, 2], found {shape:?}"),
        )
    })?;
    if two != 2 || !len.is_power_of_two() || !(2..=1 << 27).contains(&len) {
        return Err(Error::shape(
            label,
            format!("sort records must be [N, len, 2] with len a power of two in 2..=2^27, found {shape:?}"),
        ));
    }
    let wg = (len / 2).min(MAX_WG);
    let block = 2 * wg;
    let constants = vec![("WG", wg as f64)];
    let mut step = |entry: &'static str, k_lo: usize, k_hi: usize, j: usize, threads: usize| {
        let mut workgroups = dispatch_1d(threads, wg as u32);
        workgroups[2] = n as u32;
        g.push(StepDesc {
            label: format!("{label}.k{k_hi}.j{j}"),
            shader: &SHADER,
            entry,
            constants: constants.clone(),
            params: bytemuck::bytes_of(&Params {
                len: len as u32,
                k_lo: k_lo as u32,
                k_hi: k_hi as u32,
                j: j as u32,
            })
            .to_vec(),
            bindings: vec![recs.into()],
            workgroups,
            flops: 0,
        });
    };
    // Stages up to the block size need no global memory traffic between passes.
    step("sort_local", 2, block, 0, len / 2);
    let mut k = 2 * block;
    while k <= len {
        let mut j = k / 2;
        while j >= block {
            step("sort", k, k, j, len / 2);
            j /= 2;
        }
        step("sort_local", k, k, 0, len / 2);
        k *= 2;
    }
    Ok(())
}
