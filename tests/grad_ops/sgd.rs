//! sgd.wgsl vs reference::sgd over two iterations of one plan (the learning rate changed between them
//! through the hyper tensor), with and without clearing the gradient. The parameter and its history are
//! weight buffers as the convolutions bind them, made readable here.

use crate::common::*;
use sshface::gpu::{Graph, Weight};
use sshface::ops::sgd::{sgd, Multipliers, HYPER_LEN};
use sshface::reference::sgd::sgd as sgd_ref;
use sshface::GpuContext;
use std::sync::Arc;

/// A weight buffer that can also be copied out (for the test to read it).
fn readable(ctx: &GpuContext, name: &str, data: &[f32], shape: &[usize]) -> Weight {
    let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(name),
        size: (data.len() * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue
        .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
    Weight {
        name: name.into(),
        shape: shape.to_vec(),
        buffer: Arc::new(buffer),
        dtype: Default::default(),
    }
}

fn read(ctx: &GpuContext, w: &Weight) -> Vec<f32> {
    let size = w.buffer.size();
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("read"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(&w.buffer, 0, &staging, 0, size);
    ctx.queue.submit([enc.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    let view = staging.slice(..).get_mapped_range().unwrap();
    bytemuck::cast_slice(&view).to_vec()
}

#[test]
fn sgd_matches_reference_over_two_iterations() {
    let Some(ctx) = gpu() else { return };
    // (name, shape, multipliers): a weight and an SSH-module bias (lr ×2, no decay).
    let params = [
        (
            "m1.conv.weight",
            vec![5, 3, 3, 3],
            Multipliers {
                lr: 1.0,
                decay: 1.0,
            },
        ),
        (
            "m1.conv.bias",
            vec![5],
            Multipliers {
                lr: 2.0,
                decay: 0.0,
            },
        ),
    ];
    for clear in [false, true] {
        let mut g = Graph::new();
        let hyper = g.input("hyper", &[HYPER_LEN]).unwrap();
        let mut state = Vec::new();
        for (i, (name, shape, mult)) in params.iter().enumerate() {
            let n: usize = shape.iter().product();
            let w0 = rand_vec(10 + i as u64, n, -1.0, 1.0);
            let v0 = rand_vec(20 + i as u64, n, -0.01, 0.01);
            let w = readable(ctx, name, &w0, shape);
            let v = readable(ctx, &format!("{name}.history"), &v0, shape);
            let grad = g.input(&format!("{name}.grad"), shape).unwrap();
            sgd(&mut g, name, &w, &v, grad, hyper, *mult, clear).unwrap();
            state.push((w, v, grad, w0, v0, *mult));
        }
        let plan = g.compile(ctx).unwrap();
        // lr 0.004 then 0.0004 (the step), momentum 0.9, decay 5e-4, iter_size 2.
        for (it, lr) in [0.004f32, 0.0004].into_iter().enumerate() {
            let h = [lr, 0.9, 5e-4, 0.5];
            plan.write(ctx, hyper, &h).unwrap();
            let grads: Vec<Vec<f32>> = state
                .iter()
                .enumerate()
                .map(|(i, s)| rand_vec(30 + 10 * it as u64 + i as u64, s.3.len(), -2.0, 2.0))
                .collect();
            for (s, gr) in state.iter().zip(&grads) {
                plan.write(ctx, s.2, gr).unwrap();
            }
            let got_grads = plan
                .run_f32(ctx, &state.iter().map(|s| s.2).collect::<Vec<_>>())
                .unwrap();
            for ((w, v, _, w_want, v_want, mult), (gr, got_gr)) in
                state.iter_mut().zip(grads.iter().zip(&got_grads))
            {
                sgd_ref(w_want, v_want, gr, h, *mult);
                let case = format!("{} iteration {it} clear {clear}", w.name);
                assert_close(&format!("{case} w"), &read(ctx, w), w_want, 1e-7, 1e-6);
                assert_close(&format!("{case} v"), &read(ctx, v), v_want, 1e-9, 1e-5);
                let want_gr = if clear {
                    vec![0.0; gr.len()]
                } else {
                    gr.clone()
                };
                assert_eq!(got_gr, &want_gr, "{case}: gradient after the update");
            }
        }
    }
}

#[test]
fn sgd_rejects_bad_inputs() {
    let Some(ctx) = gpu() else { return };
    let mult = Multipliers {
        lr: 1.0,
        decay: 1.0,
    };
    let w = ctx.weight("conv1.weight", &[0.0; 6], &[2, 3]).unwrap();
    let v = ctx.weight("conv1.history", &[0.0; 6], &[2, 3]).unwrap();
    let v_bad = ctx.weight("conv1.history", &[0.0; 6], &[3, 2]).unwrap();
    let mut g = Graph::new();
    let hyper = g.input("hyper", &[HYPER_LEN]).unwrap();
    let bad_hyper = g.input("hyper3", &[3]).unwrap();
    let grad = g.input("conv1.weight.grad", &[2, 3]).unwrap();
    let bad_grad = g.input("conv1.bias.grad", &[6]).unwrap();
    let e = sgd(&mut g, "conv1", &w, &v, bad_grad, hyper, mult, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv1.bias.grad") && e.contains("[2, 3]"), "{e}");
    let e = sgd(&mut g, "conv1", &w, &v_bad, grad, hyper, mult, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv1.history") && e.contains("[3, 2]"), "{e}");
    let e = sgd(&mut g, "conv1", &w, &v, grad, bad_hyper, mult, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("hyper3") && e.contains("lr, momentum"), "{e}");
    let e = sgd(&mut g, "conv1", &w, &w, grad, hyper, mult, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("different buffers"), "{e}");
}
