//! Buffers computed once from a weight on the GPU (today: weights repacked in the order a kernel stages
//! them, `ops::pack_kmajor`), shared by every plan that binds them and freed with the last of those plans.
//!
//! A graph names one through [`Binding::Derived`](crate::gpu::Binding::Derived); the plan resolves it at build
//! time through [`GpuContext::derived`], which runs the producing step in a submit of its own the first time.
//! Only weights that never change may be derived from: a trainable weight (updated in place by SGD) would leave
//! its derived copy stale, so ops repack those inside the graph instead, on every run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, StepDesc};

/// A buffer of `bytes` that `step` writes from `source`. `step.bindings` are its inputs (the source weight);
/// the new buffer is bound after them, last, as the output.
#[derive(Debug)]
pub struct Derived {
    /// What the step computes, beside the source: equal keys of one source give one buffer (e.g.
    /// `pack_kmajor groups 1 rows 256 k 2304`).
    pub key: String,
    pub source: Arc<wgpu::Buffer>,
    pub bytes: u64,
    pub step: StepDesc,
}

/// The derived buffers of a context by (source buffer, key). Entries hold both weakly: a derived buffer
/// lives while a plan binds it, and an entry whose source or buffer is gone is rebuilt on demand.
#[derive(Default)]
pub(crate) struct DerivedCache {
    entries: Mutex<HashMap<(usize, String), Entry>>,
}

struct Entry {
    source: Weak<wgpu::Buffer>,
    buffer: Weak<wgpu::Buffer>,
}

impl GpuContext {
    /// The buffer `d` describes, computed on first use (one submit) and shared while any plan holds it.
    pub fn derived(&self, d: &Derived) -> Result<Arc<wgpu::Buffer>> {
        // The source's address is a sound key while the entry holds a Weak of it: the allocation cannot be
        // reused for another buffer before every Weak is dropped.
        let key = (Arc::as_ptr(&d.source) as usize, d.key.clone());
        let mut entries = self.derived.entries.lock().unwrap();
        if let Some(e) = entries.get(&key) {
            if let (Some(_), Some(b)) = (e.source.upgrade(), e.buffer.upgrade()) {
                return Ok(b);
            }
        }
        entries.retain(|_, e| e.source.strong_count() > 0 && e.buffer.strong_count() > 0);
        let buffer = Arc::new(self.run_derived(d)?);
        entries.insert(
            key,
            Entry {
                source: Arc::downgrade(&d.source),
                buffer: Arc::downgrade(&buffer),
            },
        );
        Ok(buffer)
    }

    /// How many derived buffers some plan still holds (the rest of the cache is dead entries).
    pub fn derived_live(&self) -> usize {
        let entries = self.derived.entries.lock().unwrap();
        entries
            .values()
            .filter(|e| e.buffer.strong_count() > 0)
            .count()
    }

    /// Allocates the output and runs `d.step` into it, in a submit of its own: later submits (the plans that
    /// bind it) run after it on the one queue, so nothing waits here.
    fn run_derived(&self, d: &Derived) -> Result<wgpu::Buffer> {
        let what = format!("deriving '{}' ({})", d.step.label, d.key);
        let out = self.create_buffer(
            &what,
            d.bytes.next_multiple_of(16).max(16),
            wgpu::BufferUsages::STORAGE,
        )?;
        let s = &d.step;
        let cmd = self.scoped(&what, || {
            let pipeline = self.pipeline(s.shader, s.entry, &s.constants)?;
            let params = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(&s.label),
                    contents: &s.params,
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            // Inputs in order, then the output.
            let mut bufs = Vec::with_capacity(s.bindings.len() + 1);
            for b in &s.bindings {
                match b {
                    crate::gpu::Binding::Weight(w) => bufs.push((**w).clone()),
                    other => {
                        return Err(Error::shape(
                            &s.label,
                            format!(
                                "a derived buffer is computed from weights only, not {other:?}"
                            ),
                        ))
                    }
                }
            }
            bufs.push(out.clone());
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: params.as_entire_binding(),
            }];
            for (i, b) in bufs.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: b.as_entire_binding(),
                });
            }
            let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&s.label),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(&what) });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&s.label),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                let [x, y, z] = s.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
            Ok(enc.finish())
        })?;
        self.submit(&what, cmd)?;
        Ok(out)
    }
}
