//! A shader that only spins: the long-running submit of the test-only fault injection ([`Fault::Stall`]).
//!
//! [`Fault::Stall`]: crate::gpu::health::Fault::Stall

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{Binding, GpuContext, Graph, StepDesc, TensorId};
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

/// Invocations of the one workgroup that spins; `out` holds one f32 each.
pub const WG: usize = 64;

/// Appends a step of one workgroup spinning for `2^20 · rounds` dependent iterations per invocation (Mesa 26.1
/// lavapipe on 2 cores: about 0.2 s per round) and writing its result to `out` (`[64]`).
pub fn spin(g: &mut Graph, label: &str, out: TensorId, rounds: u32) -> Result<()> {
    if g.info(out).len() < WG || g.dtype(out) != crate::gpu::DType::F32 {
        return Err(Error::shape(
            label,
            format!(
                "spin writes {WG} f32 values; '{}' is {:?} {:?}",
                g.info(out).name,
                g.dtype(out),
                g.shape(out)
            ),
        ));
    }
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "spin",
        constants: vec![("WG", WG as f64)],
        params: bytemuck::bytes_of(&Params {
            iters: 1 << 20,
            rounds,
            seed: 1.0,
            _pad: 0,
        })
        .to_vec(),
        bindings: vec![out.into()],
        workgroups: [1, 1, 1],
        flops: 0,
    });
    Ok(())
}

/// The stall of [`Fault::Stall`](crate::gpu::health::Fault::Stall): 2·10^10 dependent iterations per invocation, about an
/// hour on lavapipe (0.2 s per round measured) and, at a few cycles per iteration, still most of a minute on a large
/// GPU: far beyond the seconds of GPU timeout the tests set. Submitted on its own and never waited for, so later
/// submits queue behind it.
pub(crate) fn stall(ctx: &GpuContext) -> Result<()> {
    let mut g = Graph::new();
    let out = g.tensor("stall", &[WG])?;
    spin(&mut g, "stall", out, 20_000)?;
    let step = &g.steps()[0];
    let pipeline = ctx.pipeline(step.shader, step.entry, &step.constants)?;
    let uniform = ctx.create_buffer(
        "the stall's parameters",
        step.params.len() as u64,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    )?;
    ctx.queue.write_buffer(&uniform, 0, &step.params);
    let target = ctx.create_buffer(
        "the stall's output",
        WG as u64 * 4,
        wgpu::BufferUsages::STORAGE,
    )?;
    debug_assert!(matches!(step.bindings[..], [Binding::Tensor(_)]));
    let cmd = ctx.scoped("the stall shader", || {
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("stall"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: target.as_entire_binding(),
                },
            ],
        });
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            let [x, y, z] = step.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
        Ok(enc.finish())
    })?;
    ctx.submit("the stall shader", cmd).map(|_| ())
}
