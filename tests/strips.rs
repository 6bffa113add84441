//! Row strips through every stage of both networks: plans for huge images within a small binding (graph building
//! on wgpu's no-op device, nothing runs), and bit-identical results against unsplit runs on lavapipe.

mod common;
mod vgg_support;

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use image::imageops::FilterType;
use image::RgbImage;
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
    let mut b = Detector::builder()
        .precision(Precision::F32)
        .context(ctx)
        .score_threshold(0.05);
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

/// Labels of the plan's steps that run in strips (or row chunks), without the tag (`backbone.conv1`, …).
fn strip_layers(det: &Detector, sizes: &[[usize; 2]]) -> BTreeSet<String> {
    det.plan_steps(sizes)
        .unwrap()
        .iter()
        .filter_map(|s| {
            let l = &s.label;
            let cut = l.find("[strip ").or_else(|| l.find("[chunk "))?;
            Some(l[..cut].to_string())
        })
        .collect()
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

/// Stages of retinaface-mnv2 that must run in strips on a 61×2599 image (padded 64×2624) with a 38,000-byte budget:
/// the widest row (3 rows of block1.expand for one row of block1.dw, 36,864 bytes) fits, every map of the three
/// levels does not.
const RETINA_STAGES: [&str; 22] = [
    "preprocess.image0",
    "backbone.conv1",
    "backbone.block1.dw",
    "backbone.block2.project",
    "backbone.block5.project",
    "backbone.block9.dw",
    "backbone.block14.expand",
    "fpn.lateral1",
    "fpn.lateral3",
    "fpn.up3",
    "fpn.sum2",
    "fpn.merge2",
    "fpn.up2",
    "fpn.sum1",
    "ssh0.conv7x7_3",
    "ssh2.conv3x3",
    "head.class.0",
    "head.landmark.2",
    "head.class.2.softmax",
    "decode.1",
    "nms.keys",
    "nms.gather",
];
const RETINA_BUDGET: u64 = 38_000;
const RETINA_SIZES: [[usize; 2]; 2] = [[2599, 61], [2590, 58]];

/// ssh-vgg16 at scale 1 on 45×501 with a 48,000-byte budget: every stage down to M3 (stride 32) runs in strips.
const VGG_STAGES: [&str; 18] = [
    "preprocess.image0.level0",
    "conv1_1",
    "conv2_2",
    "pool2",
    "conv3_1",
    "pool3",
    "conv4_3",
    "pool4",
    "conv5_3",
    "conv4_128",
    "conv5_128_up",
    "conv4_fuse",
    "conv4_fuse_final",
    "pool6",
    "m3.ssh_7x7",
    "m3.ssh_cls_score",
    "m1.decode",
    "nms.gather",
];
const VGG_BUDGET: u64 = 48_000;
const VGG_SIZES: [[usize; 2]; 2] = [[501, 45], [499, 47]];

fn assert_stages(det: &Detector, sizes: &[[usize; 2]], stages: &[&str]) {
    let got = strip_layers(det, sizes);
    let missing: Vec<_> = stages.iter().filter(|s| !got.contains(**s)).collect();
    assert!(
        missing.is_empty(),
        "not in strips: {missing:?}\nin strips: {got:?}"
    );
}

#[test]
fn retinaface_plans_every_stage_in_strips() {
    let det = retina(noop(), Some(RETINA_BUDGET));
    assert_stages(&det, &RETINA_SIZES[..1], &RETINA_STAGES);
}

#[test]
fn vgg_plans_every_stage_in_strips() {
    let det = vgg(noop(), Protocol::Scale(1.0), Some(VGG_BUDGET));
    assert_stages(&det, &VGG_SIZES[..1], &VGG_STAGES);
}

/// The lavapipe context shared by the GPU tests (None, with the printed reason, without an adapter).
fn gpu() -> Option<Arc<GpuContext>> {
    static C: OnceLock<Arc<GpuContext>> = OnceLock::new();
    common::gpu()?;
    Some(
        C.get_or_init(|| Arc::new(GpuContext::new(&AdapterOptions::default()).unwrap()))
            .clone(),
    )
}

/// The astronaut (tests/data) shrunk to `w` pixels wide, stacked down to `h` rows: small faces all the way down.
fn stacked_faces(h: usize, w: usize) -> RgbImage {
    let src = image::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/astronaut.png"
    ))
    .unwrap()
    .to_rgb8();
    let tile = image::imageops::resize(&src, w as u32, w as u32, FilterType::Triangle);
    RgbImage::from_fn(w as u32, h as u32, |x, y| *tile.get_pixel(x, y % w as u32))
}

/// Every dumped tensor and every detection of `strips` equals `plain`'s bit for bit, for one image and a batch.
fn assert_identical(plain: &Detector, strips: &Detector, images: &[RgbImage]) {
    let (a, b) = (
        plain.dump(&images[0]).unwrap(),
        strips.dump(&images[0]).unwrap(),
    );
    assert_eq!(a.len(), b.len());
    for ((na, sa, va), (nb, sb, vb)) in a.iter().zip(&b) {
        assert_eq!((na, sa), (nb, sb));
        let diff = va
            .iter()
            .zip(vb)
            .position(|(x, y)| x.to_bits() != y.to_bits());
        assert!(diff.is_none(), "{na} differs with strips at {diff:?}");
    }
    let (fa, fb) = (
        plain.detect_batch(images).unwrap(),
        strips.detect_batch(images).unwrap(),
    );
    assert!(fa.iter().any(|f| !f.is_empty()), "no faces to compare");
    assert_eq!(fa, fb);
}

/// The GPU runs use smaller cases than the plans above (fewer strips, so lavapipe runs ~1,400 and ~2,600 steps
/// instead of ~16,000 and ~5,000), where still every kind of stage runs in strips (ssh-vgg16's rows stay one
/// tensor; their chunks share retinaface-mnv2's code): (sizes, budget, stages).
const RETINA_GPU: ([[usize; 2]; 2], u64, [&str; 15]) = (
    [[333, 213], [331, 211]],
    200_000,
    [
        "preprocess.image0",
        "backbone.conv1",
        "backbone.block1.dw",
        "backbone.block3.project",
        "backbone.block13.project",
        "fpn.lateral1",
        "fpn.up2",
        "fpn.sum1",
        "fpn.merge1",
        "ssh0.conv7x7_3",
        "head.landmark.0",
        "head.class.0.softmax",
        "decode.0",
        "nms.keys",
        "nms.gather",
    ],
);
const VGG_GPU: ([[usize; 2]; 2], u64, [&str; 12]) = (
    [[201, 63], [199, 61]],
    60_000,
    [
        "preprocess.image0.level0",
        "conv1_2",
        "pool1",
        "conv4_3",
        "pool4",
        "conv5_3",
        "conv5_128_up",
        "conv4_fuse",
        "pool6",
        "m1.ssh_7x7",
        "m2.ssh_cls_score",
        "m2.decode",
    ],
);

#[test]
fn retinaface_strips_are_bit_identical() {
    let Some(ctx) = gpu() else { return };
    let (sizes, budget, stages) = RETINA_GPU;
    let (plain, strips) = (retina(ctx.clone(), None), retina(ctx, Some(budget)));
    assert_stages(&strips, &sizes[..1], &stages);
    let images = sizes.map(|[h, w]| stacked_faces(h, w));
    assert_identical(&plain, &strips, &images);
}

#[test]
fn vgg_strips_are_bit_identical() {
    let Some(ctx) = gpu() else { return };
    let (sizes, budget, stages) = VGG_GPU;
    let plain = vgg(ctx.clone(), Protocol::Scale(1.0), None);
    let strips = vgg(ctx, Protocol::Scale(1.0), Some(budget));
    assert_stages(&strips, &sizes[..1], &stages);
    let images = sizes.map(|[h, w]| vgg_support::image(7, w as u32, h as u32));
    assert_identical(&plain, &strips, &images);
}

/// An image is refused only when the thinnest strip of some layer does not fit: the error names the map, the bytes
/// of that strip and the budget. At 1024 px wide one row of block0.dw reads 3 rows of conv1's output
/// (3 · 32 · 512 · 4 = 196,608 bytes), past a 100,000-byte budget.
#[test]
fn a_row_too_wide_is_refused_naming_the_map() {
    let det = retina(noop(), Some(100_000));
    let e = det.plan_steps(&[[64, 1024]]).unwrap_err().to_string();
    assert!(
        e.contains(
            "'backbone.conv1 (one band of 3 rows, the thinnest row strip)' needs 196608 bytes"
        ) && e.contains("100000 bytes"),
        "{e}"
    );
    // 128 px wide (the widest strip: 3 rows of block1.expand, 73,728 bytes), it plans.
    det.plan_steps(&[[64, 128]]).unwrap();
}
