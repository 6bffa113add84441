//! A graph of labelled steps over symbolic tensors. Ops append steps; `compile` assigns arena buffers
//! from tensor lifetimes, builds every bind group once and returns a [`Plan`] that runs in one submit.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::pipelines::Constants;
use crate::gpu::{ConvPath, GpuContext, Plan, Weight};
use crate::ops::Shader;

/// Handle of a tensor in a [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub(crate) usize);

/// How long a tensor's buffer must live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// Written by the host before each run; never shared.
    Input,
    /// Lives from its first to its last step; its buffer is reused by later tensors.
    Transient,
    /// Read back or kept after the run; never shared.
    Output,
    /// A buffer that outlives the plan, given by the caller ([`Graph::external`]): trainable weights, their
    /// gradient accumulators and momentum, shared by the plans of several input sizes.
    External,
}

/// Element type of a tensor in GPU memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DType {
    /// 4-byte elements: f32, or the u32 / i32 of index and count tensors.
    #[default]
    F32,
    /// IEEE half floats: feature maps at f16 precision (arithmetic stays f32 in the shaders).
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }
}

#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// Row-major shape; feature maps are `[N, C, H, W]`.
    pub shape: Vec<usize>,
    pub kind: TensorKind,
    pub dtype: DType,
}

impl TensorInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Bytes the tensor occupies, rounded up to 4 (storage bindings and copies come in 4-byte units).
    pub fn bytes(&self) -> u64 {
        (self.len() as u64 * self.dtype.size() as u64).next_multiple_of(4)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A buffer bound to a step, after the `Params` uniform at binding 0.
#[derive(Clone, Debug)]
pub enum Binding {
    /// A graph tensor (read-only or read-write, as the shader declares).
    Tensor(TensorId),
    /// A constant buffer such as a weight or bias.
    Weight(Arc<wgpu::Buffer>),
    /// A buffer computed once from a weight (weights packed for a kernel), built when the plan is.
    Derived(Arc<crate::gpu::Derived>),
}

impl From<TensorId> for Binding {
    fn from(t: TensorId) -> Self {
        Binding::Tensor(t)
    }
}
impl From<&Weight> for Binding {
    fn from(w: &Weight) -> Self {
        Binding::Weight(w.buffer.clone())
    }
}

/// One compute dispatch. Bindings: params at 0, then `bindings` at 1.. in order (inputs, weights, bias, output last).
#[derive(Clone, Debug)]
pub struct StepDesc {
    /// The weight name or layer name, e.g. `m2.ssh_5x5`; shown in debug groups, timings and errors.
    pub label: String,
    pub shader: &'static Shader,
    pub entry: &'static str,
    pub constants: Constants,
    /// The bytes of the op's `Params` struct.
    pub params: Vec<u8>,
    pub bindings: Vec<Binding>,
    pub workgroups: [u32; 3],
    /// Floating-point operations of the step (a multiply-add counts 2), for achieved GFLOP/s in profiles;
    /// 0 where arithmetic is not what bounds it (copies, sorting, NMS).
    pub flops: u64,
}

/// FLOPs of a product of `dims` multiply-adds, each counted as 2 (e.g. a convolution's
/// N·C_out·H_out·W_out·C_in/groups·KH·KW).
pub fn mac_flops(dims: &[usize]) -> u64 {
    2 * dims.iter().map(|&d| d as u64).product::<u64>()
}

/// Symbolic tensors and the steps that compute them.
#[derive(Default, Debug)]
pub struct Graph {
    pub(crate) tensors: Vec<TensorInfo>,
    pub(crate) steps: Vec<StepDesc>,
    /// Buffers of the [`TensorKind::External`] tensors, by tensor index.
    pub(crate) externals: Vec<(usize, wgpu::Buffer)>,
    conv_path: ConvPath,
    maps: DType,
    /// Whether `Auto` may pick the 256-thread conv2d_gemm tier (set per adapter kind, see
    /// [`Graph::with_big_tiles`]).
    big_tiles: bool,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// A graph whose convolutions (kernel `Auto`) run on `path`, with f32 feature maps.
    pub fn with_conv_path(path: ConvPath) -> Self {
        Self::with_numerics(path, DType::F32)
    }

    /// A graph whose convolutions run on `path` and whose networks store feature maps as `maps`.
    pub fn with_numerics(path: ConvPath, maps: DType) -> Self {
        Graph {
            conv_path: path,
            maps,
            ..Self::default()
        }
    }

    /// What this graph's convolutions run on.
    pub fn conv_path(&self) -> ConvPath {
        self.conv_path
    }

    /// Lets convolutions on kernel `Auto` use the 256-thread, 128×128-tile GEMM tier where it pays
    /// (`ops::conv2d_gemm::pays`); off by default. [`Numerics::graph`](crate::gpu::Numerics::graph) sets it from
    /// the adapter kind or the user's [`GemmTier`](crate::gpu::GemmTier).
    pub fn with_big_tiles(mut self, on: bool) -> Self {
        self.big_tiles = on;
        self
    }

    /// Whether `Auto` may use the conv2d_gemm tier.
    pub fn big_tiles(&self) -> bool {
        self.big_tiles
    }

    /// The element type networks built on this graph give their feature maps (ops follow their inputs).
    pub fn map_dtype(&self) -> DType {
        self.maps
    }

    fn add(
        &mut self,
        name: &str,
        shape: &[usize],
        kind: TensorKind,
        dtype: DType,
    ) -> Result<TensorId> {
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::Empty {
                name: name.to_string(),
                shape: shape.to_vec(),
            });
        }
        self.tensors.push(TensorInfo {
            name: name.to_string(),
            shape: shape.to_vec(),
            kind,
            dtype,
        });
        Ok(TensorId(self.tensors.len() - 1))
    }

    /// A tensor the host writes before each run.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> Result<TensorId> {
        self.add(name, shape, TensorKind::Input, DType::F32)
    }

    /// An input tensor of element type `dtype` (the host writes f32 values; f16 ones are converted).
    pub fn input_as(&mut self, name: &str, shape: &[usize], dtype: DType) -> Result<TensorId> {
        self.add(name, shape, TensorKind::Input, dtype)
    }

    /// An intermediate tensor whose buffer may be shared with tensors that do not overlap in time.
    pub fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<TensorId> {
        self.add(name, shape, TensorKind::Transient, DType::F32)
    }

    /// [`Graph::tensor`] of element type `dtype`.
    pub fn tensor_as(&mut self, name: &str, shape: &[usize], dtype: DType) -> Result<TensorId> {
        self.add(name, shape, TensorKind::Transient, dtype)
    }

    /// The caller's buffer `w` as a tensor of its shape and element type: steps read and write it in place and
    /// its values persist across runs and plans (the plan never allocates, shares or frees it). The buffer
    /// must allow storage use, and `COPY_SRC` to be read back by [`Plan::run`] (see [`GpuContext::trainable`]).
    pub fn external(&mut self, w: &Weight) -> Result<TensorId> {
        let id = self.add(&w.name, &w.shape, TensorKind::External, w.dtype)?;
        self.externals.push((id.0, (*w.buffer).clone()));
        Ok(id)
    }

    /// Element type of `id`.
    pub fn dtype(&self, id: TensorId) -> DType {
        self.tensors[id.0].dtype
    }

    /// `dtype` of every tensor in `ids` (the feature maps one op reads and writes), or an error naming
    /// the layer and the tensors when they differ.
    pub fn same_dtype(&self, layer: &str, ids: &[TensorId]) -> Result<DType> {
        let d = self.dtype(ids[0]);
        if let Some(o) = ids.iter().find(|&&t| self.dtype(t) != d) {
            return Err(Error::shape(
                layer,
                format!(
                    "feature maps of mixed element types: '{}' is {d:?}, '{}' is {:?}",
                    self.info(ids[0]).name,
                    self.info(*o).name,
                    self.dtype(*o)
                ),
            ));
        }
        Ok(d)
    }

    /// Keeps `id` alive to the end of the run so it can be read back.
    pub fn mark_output(&mut self, id: TensorId) {
        if self.tensors[id.0].kind == TensorKind::Transient {
            self.tensors[id.0].kind = TensorKind::Output;
        }
    }

    pub fn info(&self, id: TensorId) -> &TensorInfo {
        &self.tensors[id.0]
    }

    pub fn shape(&self, id: TensorId) -> &[usize] {
        &self.tensors[id.0].shape
    }

    /// The shape as `[N, C, H, W]`, or an error naming the layer when it is not 4-D.
    pub fn nchw(&self, layer: &str, id: TensorId) -> Result<[usize; 4]> {
        let s = self.shape(id);
        <[usize; 4]>::try_from(s).map_err(|_| {
            Error::shape(
                layer,
                format!(
                    "input '{}' must be [N, C, H, W], found {s:?}",
                    self.info(id).name
                ),
            )
        })
    }

    /// Bytes of the largest tensor.
    pub fn max_tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes()).max().unwrap_or(0)
    }

    pub fn push(&mut self, step: StepDesc) {
        self.steps.push(step);
    }

    pub fn steps(&self) -> &[StepDesc] {
        &self.steps
    }

    /// Checks sizes against the device, plans the arena and builds pipelines and bind groups.
    pub fn compile(self, ctx: &GpuContext) -> Result<Plan> {
        for t in &self.tensors {
            ctx.check_bytes(&t.name, &t.shape, t.dtype.size())?;
        }
        let slots = self.plan_arena();
        Plan::build(ctx, self, slots)
    }

    /// Bytes of the arena `compile` would allocate for this graph (feature maps, inputs, outputs), without a device.
    pub fn arena_bytes(&self) -> u64 {
        self.plan_arena().1.iter().sum()
    }

    /// Greedy best-fit assignment of tensors to buffers from their lifetimes (first..=last step).
    /// Returns, per tensor, its slot index and each slot's size in bytes.
    fn plan_arena(&self) -> (Vec<usize>, Vec<u64>) {
        let n = self.tensors.len();
        let mut first = vec![usize::MAX; n];
        let mut last = vec![0usize; n];
        for (i, s) in self.steps.iter().enumerate() {
            for b in &s.bindings {
                if let Binding::Tensor(t) = b {
                    first[t.0] = first[t.0].min(i);
                    last[t.0] = last[t.0].max(i);
                }
            }
        }
        let bytes = |t: usize| match self.tensors[t].kind {
            // The caller's buffer, not the arena's.
            TensorKind::External => 0,
            _ => self.tensors[t].bytes().next_multiple_of(256),
        };
        let mut slot_of = vec![usize::MAX; n];
        let mut sizes: Vec<u64> = Vec::new();
        // Tensors that are never shared, and those never used by a step, get their own slot.
        for t in 0..n {
            if self.tensors[t].kind != TensorKind::Transient || first[t] == usize::MAX {
                slot_of[t] = sizes.len();
                sizes.push(bytes(t));
            }
        }
        let mut free: Vec<usize> = Vec::new();
        for i in 0..self.steps.len() {
            for t in 0..n {
                if slot_of[t] == usize::MAX && first[t] == i {
                    let need = bytes(t);
                    // Smallest free slot that fits, else grow the largest free one, else a new slot.
                    let fit = free
                        .iter()
                        .enumerate()
                        .filter(|(_, &s)| sizes[s] >= need)
                        .min_by_key(|(_, &s)| sizes[s]);
                    let pick = fit
                        .or_else(|| free.iter().enumerate().max_by_key(|(_, &s)| sizes[s]))
                        .map(|(k, _)| k);
                    let slot = match pick {
                        Some(k) => free.swap_remove(k),
                        None => {
                            sizes.push(0);
                            sizes.len() - 1
                        }
                    };
                    sizes[slot] = sizes[slot].max(need);
                    slot_of[t] = slot;
                }
            }
            for t in 0..n {
                if self.tensors[t].kind == TensorKind::Transient
                    && first[t] != usize::MAX
                    && last[t] == i
                {
                    free.push(slot_of[t]);
                }
            }
        }
        (slot_of, sizes)
    }
}
