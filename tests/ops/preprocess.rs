//! preprocess.wgsl vs reference::preprocess (OpenCV INTER_LINEAR on the mean-subtracted float image).
//! Tolerances: 1e-4 in the 0..255 domain and 1e-6 normalised when resizing (two 2-tap sums: the GPU may
//! contract a·b + c into an FMA, a few ulps of 255 ≈ 3e-5); 0 for copies (one subtraction and one
//! multiplication, each correctly rounded on Vulkan). The source coordinates must match OpenCV's
//! f64→f32 value exactly: one ulp off moves outputs by up to 1e-2 on noise (checked below).
//! The f16 output (preprocess_f16.wgsl) runs this case table again in `preprocess_f16.rs`.

use crate::common::*;
use rand::Rng;
use sshface::gpu::{DType, Graph, TensorId};
use sshface::ops::preprocess::{pack_rgb8, preprocess, resized_size, Preprocess};
use sshface::reference::preprocess as reference;
use sshface::GpuContext;

pub(crate) fn noise(seed: u64, [h, w]: [usize; 2]) -> Vec<u8> {
    let mut r = rng(seed);
    (0..h * w * 3).map(|_| r.random::<u8>()).collect()
}

pub(crate) fn ssh(src_hw: [usize; 2], scale: f64) -> Preprocess {
    Preprocess::ssh(src_hw, scale).unwrap()
}

fn retina(src_hw: [usize; 2], scale: f64) -> Preprocess {
    Preprocess {
        scale,
        resized_hw: resized_size(src_hw, scale).unwrap(),
        ..Preprocess::retinaface(src_hw)
    }
}

/// Writes every image into one [N, 3, Hc, Wc] canvas of `dtype` on the GPU, in order, and reads it back
/// (f16 widened to f32).
pub(crate) fn run(
    ctx: &GpuContext,
    images: &[(&[u8], &Preprocess)],
    canvas_hw: [usize; 2],
    dtype: DType,
) -> Vec<f32> {
    let [hc, wc] = canvas_hw;
    let mut g = Graph::new();
    let out = g
        .tensor_as("data", &[images.len(), 3, hc, wc], dtype)
        .unwrap();
    g.mark_output(out);
    let mut inputs: Vec<(TensorId, Vec<u32>)> = Vec::new();
    for (n, (rgb, p)) in images.iter().enumerate() {
        let words = pack_rgb8(rgb);
        let src = g.input(&format!("rgb{n}"), &[words.len()]).unwrap();
        preprocess(&mut g, &format!("preprocess{n}"), src, out, n, p).unwrap();
        inputs.push((src, words));
    }
    let plan = g.compile(ctx).expect("compile");
    for (id, words) in &inputs {
        plan.write(ctx, *id, words).expect("write");
    }
    plan.run_f32(ctx, &[out]).expect("run").remove(0)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// (name, image H×W, preprocessing, canvas H×W, atol)
pub(crate) type Case = (&'static str, [usize; 2], Preprocess, [usize; 2], f32);

/// The case table (shared with `preprocess_f16.rs`).
pub(crate) fn cases() -> Vec<Case> {
    vec![
        // s = 1: copy, RetinaFace normalisation, padded bottom/right with −1 to multiples of 32.
        (
            "retinaface copy 17x34 pad to 32x64",
            [17, 34],
            Preprocess::retinaface([17, 34]),
            [32, 64],
            0.0,
        ),
        (
            "ssh copy odd 17x34",
            [17, 34],
            ssh([17, 34], 1.0),
            [17, 34],
            0.0,
        ),
        (
            "ssh downscale 0.37 37x53",
            [37, 53],
            ssh([37, 53], 0.37),
            [14, 20],
            1e-4,
        ),
        (
            "ssh upscale 2.3 17x34",
            [17, 34],
            ssh([17, 34], 2.3),
            [39, 78],
            1e-4,
        ),
        (
            "ssh upscale 2.3 padded",
            [17, 34],
            ssh([17, 34], 2.3),
            [41, 81],
            1e-4,
        ),
        (
            "retinaface norm downscale 0.37",
            [17, 34],
            retina([17, 34], 0.37),
            [8, 16],
            1e-6,
        ),
        // cvRound ties to even: 3·1.5 = 4.5 → 4, 7·1.5 = 10.5 → 10; the canvas shows the padded edge.
        (
            "tie 3x7 s=1.5 -> 4x10",
            [3, 7],
            ssh([3, 7], 1.5),
            [5, 11],
            1e-4,
        ),
        (
            "tie 13x9 s=2.5 -> 32x22",
            [13, 9],
            ssh([13, 9], 2.5),
            [32, 22],
            1e-4,
        ),
        // s = 0.5 is OpenCV's INTER_AREA shortcut, equal to bilinear up to rounding.
        ("half 10x9 s=0.5", [10, 9], ssh([10, 9], 0.5), [5, 4], 1e-4),
        ("1x1 copy", [1, 1], ssh([1, 1], 1.0), [1, 1], 0.0),
        (
            "1x1 upscale 3.5 -> 4x4",
            [1, 1],
            ssh([1, 1], 3.5),
            [4, 4],
            1e-4,
        ),
        // dsize == ssize although s != 1: OpenCV copies.
        (
            "10x10 s=1.04 copies",
            [10, 10],
            ssh([10, 10], 1.04),
            [10, 10],
            0.0,
        ),
        (
            "10x100 s=1.04 one axis same",
            [10, 100],
            ssh([10, 100], 1.04),
            [10, 104],
            1e-4,
        ),
        // Large coordinates (up to ~2000): the f64→f32 emulation must be exact.
        (
            "long row 1x300 s=2.3",
            [1, 300],
            ssh([1, 300], 2.3),
            [2, 690],
            1e-4,
        ),
        (
            "long row 3x2000 s=0.37",
            [3, 2000],
            ssh([3, 2000], 0.37),
            [1, 740],
            1e-4,
        ),
        (
            "long column 2000x3 s=0.37",
            [2000, 3],
            ssh([2000, 3], 0.37),
            [740, 1],
            1e-4,
        ),
        (
            "ssh rule 40x37 s=1200/512",
            [40, 37],
            ssh([40, 37], 1200.0 / 512.0),
            [94, 87],
            1e-4,
        ),
    ]
}

#[test]
fn preprocess_cases() {
    let Some(ctx) = gpu() else { return };
    for (i, (name, hw, p, canvas, atol)) in cases().iter().enumerate() {
        let rgb = noise(i as u64, *hw);
        let got = run(ctx, &[(&rgb, p)], *canvas, DType::F32);
        let want = reference::preprocess(&rgb, p, *canvas);
        assert_close(name, &got, &want.data, *atol, 0.0);
    }
}

/// Random scales on long rows and columns: every destination index exercises the exact coordinate.
#[test]
fn preprocess_random_scales() {
    let Some(ctx) = gpu() else { return };
    let mut r = rng(70);
    for i in 0..12 {
        let s: f64 = r.random_range(0.2..4.0);
        let hw = if i % 2 == 0 { [2, 401] } else { [401, 2] };
        let p = ssh(hw, s);
        let rgb = noise(80 + i, hw);
        let got = run(ctx, &[(&rgb, &p)], p.resized_hw, DType::F32);
        let want = reference::preprocess(&rgb, &p, p.resized_hw);
        // 1e-4: as the case table.
        assert_close(&format!("{hw:?} s={s}"), &got, &want.data, 1e-4, 0.0);
    }
}

/// Two images of different sizes and pad values into one canvas of `dtype`: (got, reference) per image.
pub(crate) fn batch_of_two(ctx: &GpuContext, dtype: DType) -> [(Vec<f32>, Vec<f32>); 2] {
    let (a, b) = (noise(50, [17, 34]), noise(51, [20, 15]));
    let (pa, mut pb) = (ssh([17, 34], 2.3), ssh([20, 15], 0.37));
    pb.pad_value = 7.0;
    let canvas = [40, 80];
    let mut got = run(ctx, &[(&a, &pa), (&b, &pb)], canvas, dtype);
    let got_b = got.split_off(3 * 40 * 80);
    [
        (got, reference::preprocess(&a, &pa, canvas).data),
        (got_b, reference::preprocess(&b, &pb, canvas).data),
    ]
}

#[test]
fn preprocess_batch_of_two_sizes() {
    let Some(ctx) = gpu() else { return };
    for (i, (got, want)) in batch_of_two(ctx, DType::F32).iter().enumerate() {
        // 1e-4: as the single-image resize cases.
        assert_close(&format!("batch image {i}"), got, want, 1e-4, 0.0);
    }
}

#[test]
fn preprocess_real_image() {
    let Some(ctx) = gpu() else { return };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/astronaut.png");
    let (rgb, hw) = sshface::image_io::load_rgb8(&path).unwrap();
    let p = ssh(hw, 0.3);
    let canvas = p.resized_hw;
    let got = run(ctx, &[(&rgb, &p)], canvas, DType::F32);
    // 1e-4: as the noise cases.
    assert_close(
        "astronaut s=0.3",
        &got,
        &reference::preprocess(&rgb, &p, canvas).data,
        1e-4,
        0.0,
    );
}

/// The case table can fail: a reference with f32 coordinates or the wrong channel order is caught.
#[test]
fn preprocess_wrong_references_are_caught() {
    let Some(ctx) = gpu() else { return };
    let rgb = noise(60, [1, 300]);
    let p = ssh([1, 300], 2.3);
    let got = run(ctx, &[(&rgb, &p)], p.resized_hw, DType::F32);
    let inv = (1.0 / p.scale) as f32;
    let f32_coords = |d: usize| (d as f32 + 0.5) * inv - 0.5;
    let naive = reference::preprocess_with_coords(&rgb, &p, p.resized_hw, &f32_coords);
    let d = max_diff(&got, &naive.data);
    assert!(d > 1e-3, "f32 source coordinates differ by only {d}");
    let rgb_order = Preprocess {
        bgr: false,
        ..p.clone()
    };
    let d = max_diff(
        &got,
        &reference::preprocess(&rgb, &rgb_order, p.resized_hw).data,
    );
    assert!(d > 1.0, "channel order not detected ({d})");
}

#[test]
fn resized_size_rounds_half_to_even() {
    // SSH single-scale rule: s = 1200 / short side, unless the long side would exceed 1600.
    assert_eq!(
        resized_size([600, 512], 1200.0 / 512.0).unwrap(),
        [1406, 1200]
    );
    assert_eq!(
        resized_size([512, 600], 1200.0 / 512.0).unwrap(),
        [1200, 1406]
    );
    assert_eq!(
        resized_size([512, 512], 1200.0 / 512.0).unwrap(),
        [1200, 1200]
    );
    assert_eq!(
        resized_size([1000, 3000], 1600.0 / 3000.0).unwrap(),
        [533, 1600]
    );
    // Ties: 4.5 → 4, 10.5 → 10, 2.5 → 2, 32.5 → 32, 22.5 → 22, 3.5 → 4.
    assert_eq!(resized_size([3, 7], 1.5).unwrap(), [4, 10]);
    assert_eq!(resized_size([5, 5], 0.5).unwrap(), [2, 2]);
    assert_eq!(resized_size([13, 9], 2.5).unwrap(), [32, 22]);
    assert_eq!(resized_size([1, 1], 3.5).unwrap(), [4, 4]);
    assert_eq!(resized_size([17, 34], 1.0).unwrap(), [17, 34]);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = resized_size([17, 34], bad).unwrap_err().to_string();
        assert!(e.contains("17×34"), "{e}");
    }
    let e = resized_size([1, 9], 0.4).unwrap_err().to_string();
    assert!(e.contains("1×9") && e.contains("0×4"), "{e}");
}

fn graph_with(src_words: usize, out_shape: &[usize]) -> (Graph, TensorId, TensorId) {
    let mut g = Graph::new();
    let src = g.input("rgb", &[src_words]).unwrap();
    let out = g.tensor("data", out_shape).unwrap();
    (g, src, out)
}

fn err(src_words: usize, out_shape: &[usize], n: usize, p: &Preprocess) -> String {
    let (mut g, src, out) = graph_with(src_words, out_shape);
    preprocess(&mut g, "input.prep", src, out, n, p)
        .unwrap_err()
        .to_string()
}

#[test]
fn preprocess_rejects_bad_input() {
    let p = ssh([17, 34], 2.3); // 39×78
    let words = (17 * 34 * 3usize).div_ceil(4); // 434
    let ok = |e: &str, parts: &[&str]| {
        assert!(e.contains("input.prep"), "{e}");
        for s in parts {
            assert!(e.contains(s), "missing '{s}' in: {e}");
        }
    };
    ok(
        &err(words + 1, &[1, 3, 39, 78], 0, &p),
        &["435", "434", "17×34"],
    );
    ok(&err(words, &[1, 3, 39, 77], 0, &p), &["39×78", "39×77"]);
    ok(
        &err(words, &[2, 3, 39, 78], 2, &p),
        &["image index 2", "batch 2"],
    );
    ok(
        &err(words, &[1, 4, 39, 78], 0, &p),
        &["3 channels", "[1, 4, 39, 78]"],
    );
    ok(&err(words, &[1, 3, 39], 0, &p), &["[N, C, H, W]"]);
    for bad in [0.0, -2.0, f64::NAN, f64::INFINITY] {
        let q = Preprocess {
            scale: bad,
            ..p.clone()
        };
        ok(&err(words, &[1, 3, 39, 78], 0, &q), &["17×34"]);
    }
    let q = Preprocess {
        resized_hw: [40, 78],
        ..p.clone()
    };
    ok(
        &err(words, &[1, 3, 40, 78], 0, &q),
        &["[40, 78]", "[39, 78]"],
    );
    let e = p
        .check_rgb8("input.prep", &[0; 17 * 34 * 3 - 1])
        .unwrap_err()
        .to_string();
    ok(&e, &["1733", "1734", "17×34"]);
    assert!(p.check_rgb8("input.prep", &[0; 17 * 34 * 3]).is_ok());
}
