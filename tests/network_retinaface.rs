//! retinaface-mnv2 end to end on lavapipe against the golden outputs of the TF reference (tests/data/README.md).

mod common;

use std::sync::OnceLock;

use common::assert_faces_match;
use image::RgbImage;
use safetensors::SafeTensors;
use sshface::{Detector, Face, GemmTier, Precision};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const NAMES: [&str; 3] = ["astronaut", "camera", "grace_hopper"];

fn detector() -> Option<&'static Detector> {
    static DET: OnceLock<Detector> = OnceLock::new();
    // Skips (with the printed reason) when there is no adapter at all.
    common::gpu()?;
    Some(DET.get_or_init(|| {
        Detector::builder()
            .precision(Precision::F32)
            .build()
            .expect("bundled detector")
    }))
}

struct Golden {
    image: RgbImage,
    heads: Vec<(String, Vec<f32>)>,
    faces: Vec<Face>,
}

fn golden(name: &str) -> Golden {
    let bytes = std::fs::read(format!("{DATA}/{name}.heads.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let rgb = st.tensor("input_rgb").unwrap();
    let (h, w) = (rgb.shape()[0] as u32, rgb.shape()[1] as u32);
    let image = RgbImage::from_raw(w, h, rgb.data().to_vec()).unwrap();
    let heads = ["cls_logits", "bbox", "landm", "priors"]
        .iter()
        .map(|n| {
            let t = st.tensor(n).unwrap();
            (
                n.to_string(),
                t.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        })
        .collect();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DATA}/{name}.retinaface.json")).unwrap(),
    )
    .unwrap();
    let faces = json["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let v = |x: &serde_json::Value| x.as_f64().unwrap() as f32;
            let b: Vec<f32> = d["box"].as_array().unwrap().iter().map(v).collect();
            let l: Vec<[f32; 2]> = d["landmarks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| [v(&p[0]), v(&p[1])])
                .collect();
            Face {
                bbox: [b[0], b[1], b[2], b[3]],
                score: v(&d["score"]),
                landmarks: Some([l[0], l[1], l[2], l[3], l[4]]),
            }
        })
        .collect();
    Golden {
        image,
        heads,
        faces,
    }
}

/// Raw heads within 2e-4 absolute of the TF graph and priors within 1e-6 (data/README.md tolerances).
fn assert_heads_match(det: &Detector, name: &str) {
    let g = golden(name);
    let d = det.dump(&g.image).unwrap();
    let names: Vec<&str> = d.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["cls_logits", "bbox", "landm", "priors"]);
    for ((n, shape, v), (gn, want)) in d.iter().zip(&g.heads) {
        assert_eq!(n, gn);
        assert_eq!(
            shape[0] * shape[1],
            want.len(),
            "{name} {n} shape {shape:?}"
        );
        let tol = if n == "priors" { 1e-6 } else { 2e-4 };
        common::assert_close(&format!("{name} {n}"), v, want, tol, 0.0);
    }
}

/// Final detections equal the golden JSON within 0.05 px and 1e-4 in score.
fn assert_detections_match(det: &Detector, name: &str) {
    let g = golden(name);
    let faces = det.detect(&g.image).unwrap();
    assert_faces_match(name, &faces, &g.faces, 0.05, 1e-4);
}

#[test]
fn raw_heads_match_golden() {
    let Some(det) = detector() else { return };
    for name in NAMES {
        assert_heads_match(det, name);
    }
}

#[test]
fn detections_match_golden() {
    let Some(det) = detector() else { return };
    for name in NAMES {
        assert_detections_match(det, name);
    }
}

/// The wide GEMM tier (256 threads, 128×128 tiles, packed weights), which `Auto` picks on GPUs only: the golden
/// heads and faces with the same tolerances (its f16 twin is in `precision.rs`).
#[test]
fn wide_gemm_matches_golden() {
    let Some(det) = detector() else { return };
    let wide = Detector::builder()
        .precision(Precision::F32)
        .gemm(GemmTier::Wide)
        .context(det.context().clone())
        .build()
        .unwrap();
    assert!(
        wide.describe().contains("(wide GEMM)"),
        "{}",
        wide.describe()
    );
    let on_tier = |d: &Detector| {
        d.plan_steps(&[[64, 64]])
            .unwrap()
            .iter()
            .filter(|s| s.shader.key().starts_with("conv2d_gemm"))
            .count()
    };
    assert_eq!(
        on_tier(det) > 0,
        det.numerics().wide_gemm,
        "Auto on {}",
        det.describe()
    );
    assert!(
        on_tier(&wide) >= 20,
        "{} steps on the wide tier",
        on_tier(&wide)
    );
    for name in NAMES {
        assert_heads_match(&wide, name);
        assert_detections_match(&wide, name);
    }
}

/// The second backend: wgpu's GL (llvmpipe in CI) gives the astronaut's golden heads and face with the same
/// tolerances (one image: GL on llvmpipe is several times slower than lavapipe).
#[test]
fn gl_backend_matches_golden() {
    let Some(ctx) = common::gl() else { return };
    let det = Detector::builder().context(ctx).build().unwrap();
    assert_heads_match(&det, "astronaut");
    assert_detections_match(&det, "astronaut");
}

/// The project's own decoding of the PNG files gives the golden pixels, hence the golden faces.
#[test]
fn png_files_decode_to_golden_faces() {
    let Some(det) = detector() else { return };
    for name in ["astronaut", "camera"] {
        let img = sshface::image_io::load_rgb(format!("{DATA}/{name}.png")).unwrap();
        let g = golden(name);
        assert_eq!(
            img.as_raw(),
            g.image.as_raw(),
            "{name}: decoded pixels differ from input_rgb"
        );
        assert_faces_match(name, &det.detect(&img).unwrap(), &g.faces, 0.05, 1e-4);
    }
    // JPEG decoders differ by ±1 per pixel: loose tolerances (data/README.md).
    let img = sshface::image_io::load_rgb(format!("{DATA}/grace_hopper.jpg")).unwrap();
    assert_faces_match(
        "grace_hopper.jpg",
        &det.detect(&img).unwrap(),
        &golden("grace_hopper").faces,
        0.5,
        1e-3,
    );
}

/// detect_batch over images of different sizes (and a repeated one) equals single-image calls.
#[test]
fn batch_of_mixed_sizes_equals_single_calls() {
    let Some(det) = detector() else { return };
    let imgs: Vec<RgbImage> = ["grace_hopper", "astronaut", "camera"]
        .iter()
        .map(|n| golden(n).image)
        .collect();
    let batch = vec![
        imgs[0].clone(),
        imgs[1].clone(),
        imgs[2].clone(),
        imgs[1].clone(),
    ];
    let got = det.detect_batch(&batch).unwrap();
    assert_eq!(got.len(), 4);
    for (i, img) in batch.iter().enumerate() {
        let single = det.detect(img).unwrap();
        assert_faces_match(&format!("batch image {i}"), &got[i], &single, 1e-3, 1e-5);
        assert!(!single.is_empty());
    }
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let i = iw * ih;
    i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i)
}

/// Three faces from ~40 px to ~300 px on one canvas: each found where it was put, nothing else above 0.5.
#[test]
fn multi_face_canvas() {
    let Some(det) = detector() else { return };
    // (image, crop x, y, w, h, scale)
    let parts = [
        ("camera", 130u32, 30u32, 200u32, 260u32, 0.6f32),
        ("astronaut", 80, 0, 290, 300, 1.0),
        ("grace_hopper", 60, 0, 410, 470, 1.35),
    ];
    let mut canvas = RgbImage::from_fn(1040, 672, |x, y| {
        image::Rgb([(100 + x / 16) as u8, (110 + y / 16) as u8, 120])
    });
    let mut expected = Vec::new();
    let mut ox = 16u32;
    for (name, cx, cy, cw, ch, s) in parts {
        let g = golden(name);
        let single = det.detect(&g.image).unwrap();
        assert_eq!(single.len(), 1, "{name}: single-image detection");
        let crop = image::imageops::crop_imm(&g.image, cx, cy, cw, ch).to_image();
        let (sw, sh) = (
            (cw as f32 * s).round() as u32,
            (ch as f32 * s).round() as u32,
        );
        let scaled = image::imageops::resize(&crop, sw, sh, image::imageops::FilterType::Triangle);
        let oy = 16u32;
        image::imageops::replace(&mut canvas, &scaled, ox as i64, oy as i64);
        let b = single[0].bbox;
        let (fx, fy) = (sw as f32 / cw as f32, sh as f32 / ch as f32);
        expected.push((
            name,
            [
                (b[0] - cx as f32) * fx + ox as f32,
                (b[1] - cy as f32) * fy + oy as f32,
                (b[2] - cx as f32) * fx + ox as f32,
                (b[3] - cy as f32) * fy + oy as f32,
            ],
        ));
        ox += sw + 24;
    }
    let sizes: Vec<f32> = expected.iter().map(|(_, b)| b[2] - b[0]).collect();
    assert!(
        sizes.iter().cloned().fold(f32::MAX, f32::min) < 45.0
            && sizes.iter().cloned().fold(0.0, f32::max) > 230.0,
        "face sizes {sizes:?}"
    );
    let faces = det.detect(&canvas).unwrap();
    assert_eq!(faces.len(), 3, "expected 3 faces, found {faces:?}");
    for (name, b) in &expected {
        let best = faces.iter().map(|f| iou(&f.bbox, b)).fold(0.0, f32::max);
        assert!(
            best >= 0.8,
            "{name}: best IoU {best} with expected box {b:?}; found {faces:?}"
        );
    }
}

/// More candidates than NMS takes (score threshold 0 on a 768×768 input: 24,192 anchors): the image is counted as
/// truncated and the result is the exact greedy result of the best candidates, so the top face is unchanged.
#[test]
fn candidate_overflow_is_reported() {
    if common::gpu().is_none() {
        return;
    }
    let det = Detector::builder()
        .precision(Precision::F32)
        .score_threshold(0.0)
        .build()
        .unwrap();
    let g = golden("astronaut");
    let big = image::imageops::resize(&g.image, 768, 768, image::imageops::FilterType::Triangle);
    assert_eq!(det.truncated_images(), 0);
    let faces = det.detect(&big).unwrap();
    assert_eq!(det.truncated_images(), 1);
    assert!(faces.len() > 100, "{} faces", faces.len());
    let top = &faces[0];
    let want = g.faces[0].bbox.map(|v| v * 1.5);
    assert!(
        top.score > 0.99 && iou(&top.bbox, &want) > 0.8,
        "top face {top:?} vs {want:?}"
    );
    assert!(
        faces.windows(2).all(|w| w[0].score >= w[1].score),
        "score-descending"
    );
}

/// One detector shared by threads: concurrent calls on the same and on different plans give the single-call faces.
#[test]
fn shared_detector_across_threads() {
    let Some(det) = detector() else { return };
    let imgs: Vec<RgbImage> = ["astronaut", "camera"]
        .iter()
        .map(|n| golden(n).image)
        .collect();
    let want: Vec<Vec<Face>> = imgs.iter().map(|i| det.detect(i).unwrap()).collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (imgs, want) = (&imgs, &want);
            s.spawn(move || {
                let i = t % 2;
                let got = det.detect(&imgs[i]).unwrap();
                assert_faces_match(&format!("thread {t}"), &got, &want[i], 0.0, 0.0);
            });
        }
    });
}

/// A batch whose feature maps would not fit one storage binding is split into smaller batches inside the plan:
/// three images sized so that two fit (block1.expand alone holds 96·H·W bytes per image) give their single-call faces.
#[test]
fn oversized_batch_is_split() {
    let Some(ctx) = common::gpu() else { return };
    let Some(det) = detector() else { return };
    let limit = ctx.max_binding() as f64;
    // 96·side² ≈ limit / 2.3: two images fit, three do not. Capped so a large-binding GPU stays quick.
    let side = (((limit / 2.3 / 96.0).sqrt() as u32) / 32 * 32).clamp(64, 1024);
    let resize = |n: &str| {
        image::imageops::resize(
            &golden(n).image,
            side,
            side,
            image::imageops::FilterType::Triangle,
        )
    };
    let (a, b) = (resize("astronaut"), resize("grace_hopper"));
    if side < 1024 {
        assert!(
            3.0 * 96.0 * (side as f64).powi(2) > limit,
            "the batch must exceed the binding limit"
        );
    }
    let got = det
        .detect_batch(&[a.clone(), b.clone(), a.clone()])
        .unwrap();
    let (sa, sb) = (det.detect(&a).unwrap(), det.detect(&b).unwrap());
    assert!(!sa.is_empty() && !sb.is_empty());
    assert_faces_match("batch[0]", &got[0], &sa, 1e-3, 1e-5);
    assert_faces_match("batch[1]", &got[1], &sb, 1e-3, 1e-5);
    assert_faces_match("batch[2]", &got[2], &sa, 1e-3, 1e-5);
}

/// With a 4 MiB binding budget conv1 and blocks 0–1 run in row strips (at 512×512 block1.expand alone is 25 MB):
/// the graph has strip steps, no strip tensor exceeds the budget, and the raw heads and faces are bit-identical.
#[test]
fn row_strips_are_bit_identical() {
    let Some(ctx) = common::gpu() else { return };
    let Some(plain) = detector() else { return };
    let budget = 4u64 << 20;
    let wf = sshface::model::weights::WeightFile::from_bytes(
        "bundled",
        sshface::detector::BUNDLED_RETINAFACE,
    )
    .unwrap();
    let net =
        sshface::model::retinaface_mnv2::RetinaFaceMnv2::load(ctx, &wf, sshface::gpu::DType::F32)
            .unwrap();
    let mut g = sshface::gpu::Graph::new();
    let x = g.input("x", &[1, 3, 512, 512]).unwrap();
    let x = sshface::model::strips::Map::whole(&g, x).unwrap();
    net.forward(&mut g, &x, budget).unwrap();
    let strip_steps: Vec<&str> = g
        .steps()
        .iter()
        .map(|s| s.label.as_str())
        .filter(|l| l.contains("[strip"))
        .collect();
    assert!(
        strip_steps
            .iter()
            .any(|l| l.starts_with("backbone.block1.expand[strip 2/")),
        "{strip_steps:?}"
    );
    let strips = Detector::builder()
        .precision(Precision::F32)
        .max_binding(budget)
        .build()
        .unwrap();
    let img = golden("astronaut").image;
    let (a, b) = (plain.dump(&img).unwrap(), strips.dump(&img).unwrap());
    for ((na, _, va), (nb, _, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(
            va.iter().zip(vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{na} differs with strips"
        );
    }
    assert_eq!(plain.detect(&img).unwrap(), strips.detect(&img).unwrap());
}
