//! A compiled graph: arena buffers, pipelines and bind groups built once; each run records every step
//! into one compute pass of one command encoder and submits once.

use std::sync::Mutex;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::graph::{Binding, DType, TensorInfo};
use crate::gpu::readback::map_read;
pub use crate::gpu::readback::{bytes_to_f32, bytes_to_u32, f32_to_f16_bytes, tensor_to_f32};
use crate::gpu::{GpuContext, Graph, TensorId, TensorKind};

// Per-step GPU timing (`Plan::profile`).
mod profile;

struct CompiledStep {
    label: String,
    shader: String,
    entry: &'static str,
    flops: u64,
    pipeline: std::sync::Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

/// GPU time of one step, from timestamp queries.
#[derive(Clone, Debug)]
pub struct StepTiming {
    pub label: String,
    pub shader: String,
    pub entry: String,
    /// The step's [`StepDesc::flops`](crate::gpu::StepDesc::flops).
    pub flops: u64,
    /// Start, in ns after the first step's start (steps beyond one query set's 4096 timestamps run in a later
    /// submit and are placed right after the previous chunk's end).
    pub start_nanos: f64,
    pub nanos: f64,
}

pub struct Plan {
    tensors: Vec<TensorInfo>,
    slot_of: Vec<usize>,
    buffers: Vec<wgpu::Buffer>,
    steps: Vec<CompiledStep>,
    /// Bytes of the distinct weight buffers the steps bind, derived ones and their sources included.
    weight_bytes: u64,
    /// The derived buffers the steps bind: the plan keeps them alive (`GpuContext::derived`).
    _derived: Vec<std::sync::Arc<wgpu::Buffer>>,
    /// Bytes of the buffers the plan allocated (external tensors excluded).
    arena_bytes: u64,
    staging: Mutex<Option<wgpu::Buffer>>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Plan({} steps, {} tensors, {} buffers, {} bytes)",
            self.steps.len(),
            self.tensors.len(),
            self.buffers.len(),
            self.arena_bytes()
        )
    }
}

impl Plan {
    pub(crate) fn build(
        ctx: &GpuContext,
        g: Graph,
        (slot_of, sizes): (Vec<usize>, Vec<u64>),
    ) -> Result<Plan> {
        ctx.scoped("building the plan", || {
            let mut buffers = arena(ctx, &g.tensors, &slot_of, &sizes)?;
            let arena_bytes = sizes.iter().filter(|&&s| s > 0).map(|&s| s.max(256)).sum();
            for (t, buf) in &g.externals {
                buffers[slot_of[*t]] = buf.clone();
            }
            let mut steps = Vec::with_capacity(g.steps.len());
            let mut weights = std::collections::HashSet::new();
            let mut weight_bytes = 0;
            let mut derived = Vec::new();
            for s in &g.steps {
                let pipeline = ctx.pipeline(s.shader, s.entry, &s.constants)?;
                let params = ctx
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(&s.label),
                        contents: &s.params,
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                }];
                // Derived buffers first (computed on first use), held by the plan while it lives.
                let first_derived = derived.len();
                for b in &s.bindings {
                    if let Binding::Derived(d) = b {
                        derived.push(ctx.derived(d)?);
                    }
                }
                let mut held = derived[first_derived..].iter();
                for (i, b) in s.bindings.iter().enumerate() {
                    let resource = match b {
                        Binding::Tensor(t) => {
                            let bytes = g.tensors[t.0].bytes();
                            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &buffers[slot_of[t.0]],
                                offset: 0,
                                size: std::num::NonZeroU64::new(bytes),
                            })
                        }
                        Binding::Weight(w) => {
                            if weights.insert(std::sync::Arc::as_ptr(w)) {
                                weight_bytes += w.size();
                            }
                            w.as_entire_binding()
                        }
                        // Both count: the source stays resident beside its derived copy.
                        Binding::Derived(d) => {
                            let w = held.next().expect("one derived buffer per Derived binding");
                            for b in [w, &d.source] {
                                if weights.insert(std::sync::Arc::as_ptr(b)) {
                                    weight_bytes += b.size();
                                }
                            }
                            w.as_entire_binding()
                        }
                    };
                    entries.push(wgpu::BindGroupEntry {
                        binding: i as u32 + 1,
                        resource,
                    });
                }
                let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(&s.label),
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &entries,
                });
                for (i, &w) in s.workgroups.iter().enumerate() {
                    if w > ctx.limits.max_compute_workgroups_per_dimension {
                        return Err(Error::shape(
                            &s.label,
                            format!(
                                "needs {w} workgroups in dimension {i}, more than the device's {}",
                                ctx.limits.max_compute_workgroups_per_dimension
                            ),
                        ));
                    }
                }
                steps.push(CompiledStep {
                    label: s.label.clone(),
                    shader: s.shader.key(),
                    entry: s.entry,
                    flops: s.flops,
                    pipeline,
                    bind_group,
                    workgroups: s.workgroups,
                });
            }
            Ok(Plan {
                tensors: g.tensors,
                slot_of,
                buffers,
                steps,
                weight_bytes,
                _derived: derived,
                arena_bytes,
                staging: Mutex::new(None),
            })
        })
    }

    pub fn info(&self, id: TensorId) -> &TensorInfo {
        &self.tensors[id.0]
    }

    /// Bytes of GPU memory held by the arena (feature maps, inputs, outputs).
    pub fn arena_bytes(&self) -> u64 {
        self.arena_bytes
    }

    /// Bytes of GPU memory held by the weights the steps bind (each shared buffer counted once).
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// `(shader, entry point)` of every step, in order: which kernels a plan runs.
    pub fn kernels(&self) -> Vec<(String, &'static str)> {
        self.steps
            .iter()
            .map(|s| (s.shader.clone(), s.entry))
            .collect()
    }

    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    /// The buffer backing `id` (shared with other transient tensors outside its lifetime).
    pub fn buffer(&self, id: TensorId) -> &wgpu::Buffer {
        &self.buffers[self.slot_of[id.0]]
    }

    /// Writes an input tensor; `data` must have exactly the tensor's number of 4-byte elements
    /// (f32 or u32). An f16 tensor takes f32 values, rounded to f16 on the way.
    pub fn write<T: bytemuck::Pod>(
        &self,
        ctx: &GpuContext,
        id: TensorId,
        data: &[T],
    ) -> Result<()> {
        let t = &self.tensors[id.0];
        if std::mem::size_of_val(data) != t.len() * 4 {
            return Err(Error::shape(
                &t.name,
                format!(
                    "{} bytes written, tensor {:?} takes {} 4-byte values ({} bytes)",
                    std::mem::size_of_val(data),
                    t.shape,
                    t.len(),
                    t.len() * 4
                ),
            ));
        }
        if t.kind != TensorKind::Input {
            return Err(Error::shape(
                &t.name,
                "only input tensors may be written by the host",
            ));
        }
        let bytes: &[u8] = bytemuck::cast_slice(data);
        match t.dtype {
            DType::F32 => ctx.queue.write_buffer(self.buffer(id), 0, bytes),
            DType::F16 => {
                let mut half = f32_to_f16_bytes(&bytes_to_f32(bytes));
                half.resize(t.bytes() as usize, 0);
                ctx.queue.write_buffer(self.buffer(id), 0, &half)
            }
        }
        Ok(())
    }

    /// Records every step into one pass, copies `read` tensors to a staging buffer in the same encoder,
    /// submits once and returns the bytes of each `read` tensor (f16 ones padded to a multiple of 4 bytes).
    pub fn run(&self, ctx: &GpuContext, read: &[TensorId]) -> Result<Vec<Vec<u8>>> {
        let ranges: Vec<(TensorId, u64, u64)> = read
            .iter()
            .map(|&id| (id, 0, self.tensors[id.0].bytes()))
            .collect();
        self.submit(ctx, true, &ranges)
    }

    /// [`Plan::run`] returning each `read` tensor as f32 values, whatever its element type.
    pub fn run_f32(&self, ctx: &GpuContext, read: &[TensorId]) -> Result<Vec<Vec<f32>>> {
        let bytes = self.run(ctx, read)?;
        Ok(read
            .iter()
            .zip(bytes)
            .map(|(&id, b)| {
                let t = &self.tensors[id.0];
                tensor_to_f32(&b, t.dtype, t.len())
            })
            .collect())
    }

    /// Reads byte ranges `(tensor, offset, len)` of output tensors written by the last run, with one copy
    /// submit: lets callers fetch only the rows a count says are valid. Offsets and lengths must be multiples of 4.
    pub fn read_ranges(
        &self,
        ctx: &GpuContext,
        ranges: &[(TensorId, u64, u64)],
    ) -> Result<Vec<Vec<u8>>> {
        self.submit(ctx, false, ranges)
    }

    /// One submit: every step (when `compute`), then copies of `ranges` into the staging buffer; waits and returns
    /// the bytes of each range.
    fn submit(
        &self,
        ctx: &GpuContext,
        compute: bool,
        ranges: &[(TensorId, u64, u64)],
    ) -> Result<Vec<Vec<u8>>> {
        for &(id, off, len) in ranges {
            let t = &self.tensors[id.0];
            if t.kind == TensorKind::Transient {
                return Err(Error::shape(
                    &t.name,
                    "is transient; mark it as an output to read it back",
                ));
            }
            if off % 4 != 0 || len % 4 != 0 || off + len > t.bytes() {
                return Err(Error::shape(
                    &t.name,
                    format!(
                        "cannot read bytes {off}..{} of a tensor of {} bytes",
                        off + len,
                        t.bytes()
                    ),
                ));
            }
        }
        let total: u64 = ranges.iter().map(|r| r.2.next_multiple_of(256)).sum();
        let mut staging = self.staging.lock().unwrap();
        ctx.check_usable()?;
        if total > 0 {
            self.staging_at_least(ctx, &mut staging, total)?;
        }
        let cmd = ctx.scoped(
            if compute {
                "running the plan"
            } else {
                "reading results"
            },
            || {
                let mut enc = ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("sshface plan"),
                    });
                if compute {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("sshface"),
                        timestamp_writes: None,
                    });
                    for s in &self.steps {
                        pass.push_debug_group(&s.label);
                        pass.set_pipeline(&s.pipeline);
                        pass.set_bind_group(0, &s.bind_group, &[]);
                        pass.dispatch_workgroups(s.workgroups[0], s.workgroups[1], s.workgroups[2]);
                        pass.pop_debug_group();
                    }
                }
                if let Some(st) = staging.as_ref().filter(|_| total > 0) {
                    let mut dst = 0;
                    for &(id, off, len) in ranges {
                        if len > 0 {
                            enc.copy_buffer_to_buffer(self.buffer(id), off, st, dst, len);
                        }
                        dst += len.next_multiple_of(256);
                    }
                }
                Ok(enc.finish())
            },
        )?;
        let what = if compute {
            format!("a plan of {} steps", self.steps.len())
        } else {
            "reading results".to_string()
        };
        if compute {
            ctx.before_submit()?;
        }
        let submitted = ctx.submit(&what, cmd)?;
        let Some(st) = staging.as_ref().filter(|_| total > 0) else {
            ctx.wait(&what, submitted.0, submitted.1)?;
            return Ok(vec![Vec::new(); ranges.len()]);
        };
        let bytes = map_read(ctx, st, total, &what, submitted)?;
        let mut out = Vec::with_capacity(ranges.len());
        let mut at = 0usize;
        for &(_, _, len) in ranges {
            out.push(bytes[at..at + len as usize].to_vec());
            at += len.next_multiple_of(256) as usize;
        }
        Ok(out)
    }

    fn staging_at_least(
        &self,
        ctx: &GpuContext,
        staging: &mut Option<wgpu::Buffer>,
        size: u64,
    ) -> Result<()> {
        if staging.as_ref().is_none_or(|b| b.size() < size) {
            *staging = None;
            *staging = Some(ctx.create_buffer(
                "the readback staging buffer",
                size,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )?);
        }
        Ok(())
    }
}

/// The arena's buffers, one per slot; an allocation that fails is an [`Error::OutOfMemory`] naming the slot's size,
/// its tensors and the plan's total.
fn arena(
    ctx: &GpuContext,
    tensors: &[TensorInfo],
    slot_of: &[usize],
    sizes: &[u64],
) -> Result<Vec<wgpu::Buffer>> {
    let total: u64 = sizes.iter().map(|&s| s.max(256)).sum();
    let what = |i: usize| {
        let names: Vec<&str> = tensors
            .iter()
            .zip(slot_of)
            .filter(|&(_, &s)| s == i)
            .map(|(t, _)| t.name.as_str())
            .take(3)
            .collect();
        format!(
            "arena slot {i} (tensors {}) of a plan of {total} bytes in {} buffers",
            names.join(", "),
            sizes.len()
        )
    };
    if ctx.oom_fault() {
        return Err(Error::OutOfMemory {
            what: what(0),
            bytes: sizes.first().map_or(0, |&s| s.max(256)),
            msg: "the device could not allocate it (injected test fault)".into(),
        });
    }
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            ctx.create_buffer(
                &what(i),
                size.max(256),
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            )
        })
        .collect()
}
