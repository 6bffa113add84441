//! A shader that only spins: the long-running submit of the test-only fault injection ([`Fault::Stall`]).
//!
//! [`Fault::Stall`]: crate::gpu::health::Fault::Stall

use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::GpuContext;
use crate::ops::Shader;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub iters: u32,
    pub rounds: u32,
    pub seed: f32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 16);

pub static SHADER: Shader = crate::shader!("spin", Params);

/// Invocations of the one workgroup the stall runs.
const WG: u32 = 64;

/// Submits one workgroup spinning for `2^20 · rounds` dependent iterations per invocation (Mesa 26.1 lavapipe on 2
/// cores: about 0.2 s per round). Later submits on the queue wait behind it.
pub fn spin(ctx: &GpuContext, rounds: u32) -> Result<()> {
    let pipeline = ctx.pipeline(&SHADER, "spin", &vec![("WG", WG as f64)])?;
    let params = Params {
        iters: 1 << 20,
        rounds,
        seed: 1.0,
        _pad: 0,
    };
    let uniform = ctx.create_buffer(
        "spin params",
        16,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    )?;
    ctx.queue
        .write_buffer(&uniform, 0, bytemuck::bytes_of(&params));
    let out = ctx.create_buffer("spin out", WG as u64 * 4, wgpu::BufferUsages::STORAGE)?;
    let cmd = ctx.scoped("the stall shader", || {
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("spin"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: out.as_entire_binding(),
                },
            ],
        });
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(1, 1, 1);
        }
        Ok(enc.finish())
    })?;
    ctx.submit("the stall shader", cmd).map(|_| ())
}

/// The stall of [`Fault::Stall`](crate::gpu::health::Fault::Stall): about 400 s on lavapipe, far beyond the seconds
/// of GPU timeout the tests set.
pub(crate) fn stall(ctx: &GpuContext) -> Result<()> {
    spin(ctx, 2000)
}
