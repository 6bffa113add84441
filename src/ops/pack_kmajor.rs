//! Conv weights repacked k-major for the wide GEMM tier (`shaders/pack_kmajor.wgsl`): `[groups · rows, k]`
//! (PyTorch/Caffe order, `k = C_in/groups · KH · KW`) becomes `[groups, kp, mp]`, zero beyond `rows` and `k`.
//! A slice of BK depths × BM channels is then BK contiguous runs that `conv2d_gemm.wgsl` loads with one aligned
//! vec4 per thread, straight into its workgroup layout (no transpose, no bounds checks).
//!
//! Done once per weight, layout and context ([`derived`], cached by [`GpuContext::derived`]); a trainable weight
//! changes under its plans, so [`pack`] repacks it inside the graph on every run instead.
//!
//! [`GpuContext::derived`]: crate::gpu::GpuContext::derived

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, Binding, Derived, Graph, StepDesc, TensorId, Weight};
use crate::ops::{Shader, WG};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub rows: u32,
    pub k: u32,
    pub kp: u32,
    pub mp: u32,
    /// `groups · kp · mp`, the packed elements.
    pub total: u32,
    pub _pad: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<Params>() == 32);

pub static SHADER: Shader = crate::shader!("pack_kmajor", Params);
pub static SHADER_F16: Shader = crate::shader_f16!("pack_kmajor", Params);

/// The packed shape: `groups` blocks of `kp` depths × `mp` channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub groups: usize,
    pub rows: usize,
    pub k: usize,
    pub kp: usize,
    pub mp: usize,
}

impl Layout {
    pub fn shape(self) -> [usize; 3] {
        [self.groups, self.kp, self.mp]
    }
    fn len(self) -> usize {
        self.groups * self.kp * self.mp
    }
}

/// Checks `l` against the weight: `groups · rows · k` values, padded sizes at least the real ones.
fn step(label: &str, w: &Weight, l: Layout) -> Result<StepDesc> {
    if l.groups * l.rows * l.k != w.len() || l.kp < l.k || l.mp < l.rows || l.len() == 0 {
        return Err(Error::shape(
            label,
            format!(
                "cannot pack weight '{}' {:?} as {l:?}: needs groups·rows·k = {} values and kp ≥ k, mp ≥ rows",
                w.name,
                w.shape,
                w.len()
            ),
        ));
    }
    let u = |v: usize| v as u32;
    Ok(StepDesc {
        label: format!("{label}.pack"),
        shader: crate::ops::variant(w.dtype, &SHADER, &SHADER_F16),
        entry: "pack_kmajor",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params {
            rows: u(l.rows),
            k: u(l.k),
            kp: u(l.kp),
            mp: u(l.mp),
            total: u(l.len()),
            _pad: [0; 3],
        })
        .to_vec(),
        bindings: vec![w.into()],
        workgroups: dispatch_1d(l.len(), WG),
        flops: 0,
    })
}

/// `w` packed as `l`, computed once when a plan that binds it is built: for weights that never change.
pub fn derived(label: &str, w: &Weight, l: Layout) -> Result<Binding> {
    if w.is_trainable() {
        return Err(Error::shape(
            label,
            format!(
                "weight '{}' is trainable: pack it in the graph (ops::pack_kmajor::pack)",
                w.name
            ),
        ));
    }
    Ok(Binding::Derived(Arc::new(Derived {
        key: format!("pack_kmajor {l:?}"),
        source: w.buffer.clone(),
        bytes: (l.len() * w.dtype.size()) as u64,
        step: step(label, w, l)?,
    })))
}

/// Appends a step packing `w` as `l` into a new tensor `[groups, kp, mp]` of the weight's type, on every run.
pub fn pack(g: &mut Graph, label: &str, w: &Weight, l: Layout) -> Result<TensorId> {
    let mut s = step(label, w, l)?;
    let out = g.tensor_as(&s.label, &l.shape(), w.dtype)?;
    s.bindings.push(out.into());
    g.push(s);
    Ok(out)
}
