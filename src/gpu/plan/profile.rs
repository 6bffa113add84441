//! Per-step GPU timing of a [`Plan`]: timestamp queries around every step, in chunks of a query set.

use crate::error::{Error, Result};
use crate::gpu::readback::map_read;
use crate::gpu::{GpuContext, Plan, StepTiming};

impl Plan {
    /// Runs once with a timestamp around every step and returns each step's GPU time.
    /// Needs TIMESTAMP_QUERY_INSIDE_PASSES; returns an error naming the missing feature otherwise.
    pub fn profile(&self, ctx: &GpuContext) -> Result<Vec<StepTiming>> {
        let need = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        if !ctx.features.contains(need) {
            return Err(Error::Config(format!(
                "adapter '{}' lacks TIMESTAMP_QUERY_INSIDE_PASSES; per-layer timing is unavailable",
                ctx.info.name
            )));
        }
        let n = self.steps.len() as u32 * 2;
        let mut timings = Vec::new();
        // Query sets hold at most 4096 queries; profile in chunks of steps.
        for chunk_start in (0..n).step_by(4096) {
            let count = (n - chunk_start).min(4096);
            let qs = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count,
            });
            let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile resolve"),
                size: count as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let read = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile read"),
                size: count as u64 * 8,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let cmd = ctx.scoped("profiling the plan", || {
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    for (i, s) in self.steps.iter().enumerate() {
                        let q = i as u32 * 2;
                        let inside = q >= chunk_start && q < chunk_start + count;
                        if inside {
                            pass.write_timestamp(&qs, q - chunk_start);
                        }
                        pass.set_pipeline(&s.pipeline);
                        pass.set_bind_group(0, &s.bind_group, &[]);
                        pass.dispatch_workgroups(s.workgroups[0], s.workgroups[1], s.workgroups[2]);
                        if inside {
                            pass.write_timestamp(&qs, q + 1 - chunk_start);
                        }
                    }
                }
                enc.resolve_query_set(&qs, 0..count, &resolve, 0);
                enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, count as u64 * 8);
                Ok(enc.finish())
            })?;
            let submitted = ctx.submit("profiling the plan", cmd)?;
            let bytes = map_read(
                ctx,
                &read,
                count as u64 * 8,
                "profiling the plan",
                submitted,
            )?;
            let ticks: &[u64] = bytemuck::cast_slice(&bytes);
            let period = ctx.queue.get_timestamp_period() as f64;
            let origin = ticks[0];
            let offset = timings
                .last()
                .map_or(0.0, |t: &StepTiming| t.start_nanos + t.nanos);
            for k in 0..(count / 2) as usize {
                let step = (chunk_start / 2) as usize + k;
                let s = &self.steps[step];
                let dt = ticks[2 * k + 1].saturating_sub(ticks[2 * k]) as f64 * period;
                timings.push(StepTiming {
                    label: s.label.clone(),
                    shader: s.shader.clone(),
                    entry: s.entry.to_string(),
                    flops: s.flops,
                    start_nanos: offset + ticks[2 * k].saturating_sub(origin) as f64 * period,
                    nanos: dt,
                });
            }
        }
        Ok(timings)
    }
}
