//! Row strips through every stage of both networks: plans for huge images within a small binding (graph building
//! on wgpu's no-op device, nothing runs), and bit-identical results against unsplit runs on lavapipe.

mod common;
mod vgg_support;

use std::sync::{Arc, OnceLock};

use sshface::{AdapterOptions, Detector, GpuContext, Model, Precision, Protocol};

const MIB: u64 = 1 << 20;

/// A context on wgpu's no-op device: weights upload and graphs build, nothing runs.
fn noop() -> Arc<GpuContext> {
    let opts = AdapterOptions {
        backends: Some(wgpu::Backends::NOOP),
        adapter_name: Some("noop".into()),
        ..AdapterOptions::default()
    };
    Arc::new(GpuContext::new(&opts).expect("wgpu's no-op device (dev-dependency feature `noop`)"))
}

fn vgg_weights() -> &'static std::path::PathBuf {
    static P: OnceLock<std::path::PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        vgg_support::write(
            "ssh_vgg16_random_seed1",
            &vgg_support::random_weights(1, &vgg_support::GAINS),
        )
    })
}

fn retina(ctx: Arc<GpuContext>, budget: Option<u64>) -> Detector {
    let mut b = Detector::builder().precision(Precision::F32).context(ctx);
    if let Some(m) = budget {
        b = b.max_binding(m);
    }
    b.build().unwrap()
}

fn vgg(ctx: Arc<GpuContext>, protocol: Protocol, budget: Option<u64>) -> Detector {
    let mut b = Detector::builder()
        .model(Model::SshVgg16)
        .precision(Precision::F32)
        .weights(vgg_weights())
        .context(ctx)
        .protocol(protocol)
        .score_threshold(0.05)
        .nms_threshold(0.3);
    if let Some(m) = budget {
        b = b.max_binding(m);
    }
    b.build().unwrap()
}

/// Labels of the plan's steps that run in strips, without the strip tag (`backbone.conv1`, …).
fn strip_layers(det: &Detector, sizes: &[[usize; 2]]) -> Vec<String> {
    let mut v: Vec<String> = det
        .plan_steps(sizes)
        .unwrap()
        .iter()
        .filter_map(|s| s.label.split_once("[strip ").map(|(l, _)| l.to_string()))
        .collect();
    v.dedup();
    v
}

/// Plans a 16,000×12,000 image and checks that no tensor exceeds lavapipe's 128 MiB binding; prints the arena.
fn plans_within_128_mib(det: &Detector, what: &str) {
    let (largest, arena) = det.plan_bytes(&[[12_000, 16_000]]).unwrap();
    eprintln!(
        "{what}, 16000x12000: largest tensor {largest} bytes, arena {arena} bytes ({:.2} GiB)",
        arena as f64 / (1u64 << 30) as f64
    );
    assert!(
        largest <= 128 * MIB,
        "{what}: largest tensor {largest} bytes"
    );
}

#[test]
fn huge_image_plans_within_128_mib_retinaface() {
    plans_within_128_mib(&retina(noop(), Some(128 * MIB)), "retinaface-mnv2");
}

#[test]
fn huge_image_plans_within_128_mib_vgg_at_half_scale() {
    let det = vgg(noop(), Protocol::Scale(0.5), Some(128 * MIB));
    plans_within_128_mib(&det, "ssh-vgg16 --scale 0.5");
}
