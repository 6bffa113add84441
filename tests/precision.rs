//! Precision paths end to end: f16 (f16 feature maps and weights, f32 arithmetic) and f16-coop (the same
//! storage, convolutions on cooperative matrices) against the f32 path that reproduces the references.
//!
//! Bounds, stated once here, for both f16 paths: on the golden images the detections are the f32 ones —
//! same count, each box at IoU ≥ 0.95 with its f32 twin and |Δscore| ≤ 0.01; retinaface-mnv2's raw heads
//! (logits and regressions, |values| up to ~10) differ from the golden heads by at most 0.05 on average,
//! 0.3 at the 99th percentile and 1.0 at worst (observed on lavapipe: mean ≤ 2.5e-2, p99 ≤ 0.16,
//! max ≤ 0.53, the worst on background anchors; f16 maps round every layer's output, ~50 layers deep);
//! ssh-vgg16's dumps (random weights) within 2e-2·max(1, max|w|) of the f32 dumps. f16 keeps 11 significant bits, so each layer adds
//! a relative error near 2^-11·sqrt(K)-ish that the network's 20–50 layers compound; the bounds leave a
//! few times the observed error (printed by each test) while a wrong kernel misses them by orders.

mod common;
mod vgg_support;

use std::sync::{Arc, OnceLock};

use safetensors::SafeTensors;
use sshface::{AdapterOptions, Detector, Face, GemmTier, GpuContext, Model, Precision, Protocol};

fn ctx() -> Option<Arc<GpuContext>> {
    static C: OnceLock<Arc<GpuContext>> = OnceLock::new();
    common::gpu()?;
    let c = C
        .get_or_init(|| Arc::new(GpuContext::new(&AdapterOptions::default()).unwrap()))
        .clone();
    (!common::coop_sizes(&c).is_empty()).then_some(c)
}

fn retina(p: Precision, ctx: &Arc<GpuContext>) -> Detector {
    Detector::builder()
        .precision(p)
        .context(ctx.clone())
        .build()
        .unwrap()
}

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

/// Same faces: equal count, pairwise (in score order) IoU ≥ 0.95 and |Δscore| ≤ 0.01.
fn assert_same_faces(case: &str, got: &[Face], want: &[Face]) -> (f32, f32) {
    assert_eq!(got.len(), want.len(), "{case}: {got:?} vs {want:?}");
    assert!(!want.is_empty(), "{case}: no faces to compare");
    let (mut min_iou, mut max_ds) = (1f32, 0f32);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let o = iou(&g.bbox, &w.bbox);
        let ds = (g.score - w.score).abs();
        assert!(
            o >= 0.95,
            "{case}: face {i} IoU {o} with f32 ({g:?} vs {w:?})"
        );
        assert!(
            ds <= 0.01,
            "{case}: face {i} score {} vs f32 {}",
            g.score,
            w.score
        );
        min_iou = min_iou.min(o);
        max_ds = max_ds.max(ds);
    }
    (min_iou, max_ds)
}

/// Auto takes cooperative matrices on GPUs; a CPU adapter (lavapipe) gains nothing from f16, so f32 there.
#[test]
fn auto_resolves_by_adapter_and_explicit_precisions_stay() {
    let Some(ctx) = ctx() else { return };
    let want = if ctx.info.device_type == wgpu::DeviceType::Cpu {
        Precision::F32
    } else {
        Precision::F16Coop
    };
    assert_eq!(retina(Precision::Auto, &ctx).precision(), want);
    assert_eq!(retina(Precision::F32, &ctx).precision(), Precision::F32);
    assert_eq!(retina(Precision::F16, &ctx).precision(), Precision::F16);
    let d = retina(Precision::F16Coop, &ctx);
    assert!(
        d.describe().contains("precision f16-coop ("),
        "{}",
        d.describe()
    );
}

const HALF: [Precision; 2] = [Precision::F16, Precision::F16Coop];

#[test]
fn retinaface_f16_paths_find_the_f32_faces() {
    let Some(ctx) = ctx() else { return };
    let f32d = retina(Precision::F32, &ctx);
    for p in HALF {
        let det = retina(p, &ctx);
        for name in ["astronaut.png", "camera.png", "grace_hopper.jpg"] {
            let img = sshface::image_io::load_rgb(data(name)).unwrap();
            let (want, got) = (f32d.detect(&img).unwrap(), det.detect(&img).unwrap());
            let (o, ds) = assert_same_faces(&format!("{name} {p}"), &got, &want);
            println!(
                "{name} {p}: {} faces, min IoU {o:.4}, max |Δscore| {ds:.2e}",
                got.len()
            );
        }
    }
}

/// f16 maps on the wide GEMM tier (which `Auto` takes on GPUs with `shader-f16` but no cooperative matrices).
#[test]
fn retinaface_f16_wide_gemm_finds_the_f32_faces() {
    let Some(ctx) = ctx() else { return };
    let f32d = retina(Precision::F32, &ctx);
    let det = Detector::builder()
        .precision(Precision::F16)
        .gemm(GemmTier::Wide)
        .context(ctx.clone())
        .build()
        .unwrap();
    assert_eq!(det.numerics().describe(), "f16 (wide GEMM)");
    for name in ["astronaut.png", "camera.png", "grace_hopper.jpg"] {
        let img = sshface::image_io::load_rgb(data(name)).unwrap();
        let (want, got) = (f32d.detect(&img).unwrap(), det.detect(&img).unwrap());
        let (o, ds) = assert_same_faces(&format!("{name} f16 wide"), &got, &want);
        println!("{name} f16 wide GEMM: min IoU {o:.4}, max |Δscore| {ds:.2e}");
    }
}

#[test]
fn retinaface_f16_paths_heads_near_golden() {
    let Some(ctx) = ctx() else { return };
    for (p, name) in HALF
        .iter()
        .flat_map(|&p| ["astronaut", "camera", "grace_hopper"].map(|n| (p, n)))
    {
        let coop = retina(p, &ctx);
        let bytes = std::fs::read(data(&format!("{name}.heads.safetensors"))).unwrap();
        let golden = SafeTensors::deserialize(&bytes).unwrap();
        let f32s = |n: &str| -> Vec<f32> {
            let d = golden.tensor(n).unwrap().data().to_vec();
            d.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let rgb = golden.tensor("input_rgb").unwrap();
        let (h, w) = (rgb.shape()[0] as u32, rgb.shape()[1] as u32);
        let img = image::RgbImage::from_raw(w, h, rgb.data().to_vec()).unwrap();
        let dump = coop.dump(&img).unwrap();
        for head in ["cls_logits", "bbox", "landm"] {
            let want = f32s(head);
            let got = &dump.iter().find(|t| t.0 == head).unwrap().2;
            let mut d: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
            d.sort_by(f32::total_cmp);
            let mean = d.iter().sum::<f32>() / d.len() as f32;
            let (p99, max) = (d[d.len() * 99 / 100], d[d.len() - 1]);
            println!("{name} {head} {p}: |Δ| mean {mean:.2e}, p99 {p99:.2e}, max {max:.2e}");
            assert!(
                mean <= 0.05 && p99 <= 0.3 && max <= 1.0,
                "{name} {head} {p}: |Δ| to the golden heads mean {mean}, p99 {p99}, max {max}"
            );
        }
    }
}

#[test]
fn ssh_vgg16_f16_paths_dumps_near_f32() {
    let Some(ctx) = ctx() else { return };
    let path = vgg_support::write(
        "precision_vgg_seed3",
        &vgg_support::random_weights(3, &vgg_support::GAINS),
    );
    let vgg = |p: Precision| {
        Detector::builder()
            .model(Model::SshVgg16)
            .weights(&path)
            .context(ctx.clone())
            .protocol(Protocol::Scale(1.0))
            .score_threshold(0.05)
            .precision(p)
            .build()
            .unwrap()
    };
    let img = vgg_support::image(11, 97, 75);
    let want = vgg(Precision::F32).dump(&img).unwrap();
    for p in HALF {
        let got = vgg(p).dump(&img).unwrap();
        assert_eq!(want.len(), got.len());
        let mut report = Vec::new();
        for ((wn, ws, w), (gn, gs, g)) in want.iter().zip(&got) {
            assert_eq!((wn, ws), (gn, gs));
            let scale = w.iter().fold(1f32, |m, v| m.max(v.abs()));
            common::assert_close(&format!("ssh-vgg16 {wn} {p}"), g, w, 2e-2 * scale, 0.0);
            let worst = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            report.push(format!("{wn} {:.1e}", worst / scale));
        }
        println!(
            "ssh-vgg16 {p} vs f32, max |g − w| / max(1, max|w|): {}",
            report.join(", ")
        );
    }
    std::fs::remove_file(&path).unwrap();
}

/// An adapter without f16 cooperative matrices: f16-coop is an error naming it; on a GPU, auto falls back
/// to f16 (the adapter's kind is set to a GPU's so that the fallback order, not the CPU rule, decides).
#[test]
fn f16_coop_without_cooperative_matrices_is_an_error() {
    if common::gpu().is_none() {
        return;
    }
    let mut plain = GpuContext::new(&AdapterOptions::default()).unwrap();
    plain.coop_sizes.clear();
    plain.info.device_type = wgpu::DeviceType::DiscreteGpu;
    let name = plain.info.name.clone();
    let plain = Arc::new(plain);
    let e = Detector::builder()
        .precision(Precision::F16Coop)
        .context(plain.clone())
        .build()
        .err()
        .expect("f16-coop must fail without cooperative matrices");
    let msg = e.to_string();
    assert!(msg.contains(&name) && msg.contains("f16-coop"), "{msg}");
    let auto = Detector::builder().context(plain).build().unwrap();
    assert_eq!(
        auto.precision(),
        Precision::F16,
        "auto without cooperative matrices"
    );
}

#[test]
fn precision_names_round_trip() {
    for p in [
        Precision::F32,
        Precision::F16,
        Precision::F16Coop,
        Precision::Auto,
    ] {
        assert_eq!(p.name().parse::<Precision>().unwrap(), p);
    }
    let e = "f64".parse::<Precision>().unwrap_err().to_string();
    assert!(e.contains("f64") && e.contains("f16-coop"), "{e}");
}
