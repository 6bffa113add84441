//! decode against the retinaface-mnv2 reference itself (tests/data, from the TF graph; see tests/data/README.md):
//! `ssd_priors` vs the graph's `priors` tensor (1e-6, as ../data/README.md requires), and the golden post-processing
//! check: the graph's raw heads, softmax on the CPU, decode on the GPU, the detection of the JSON among the rows with
//! score > 0.5 (0.05 px on box and landmarks, 1e-4 on score: the data README's tolerances).

use crate::common::*;
use crate::decode::{cpu_rows, gpu_rows, LevelData, SSD};
use sshface::gpu::DType;
use sshface::model::anchors::ssd_priors;
use sshface::ops::decode::DecodeImage;
use sshface::reference::CpuTensor;

const LEVELS: [(usize, [f32; 2]); 3] =
    [(8, [16.0, 32.0]), (16, [64.0, 128.0]), (32, [256.0, 512.0])];

fn data(file: &str) -> Vec<u8> {
    let p = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Tensor `name` of the heads file as f32 with its shape.
fn tensor(st: &safetensors::SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), v)
}

struct Golden {
    padded_hw: [usize; 2],
    json: serde_json::Value,
    cls: Vec<f32>,
    bbox: Vec<f32>,
    landm: Vec<f32>,
    priors: Vec<f32>,
}

fn golden() -> Golden {
    let json: serde_json::Value =
        serde_json::from_slice(&data("astronaut.retinaface.json")).expect("json");
    let hw = &json["padded_hw"];
    let padded_hw = [0, 1].map(|i| hw[i].as_u64().unwrap() as usize);
    let bytes = data("astronaut.heads.safetensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let (cs, cls) = tensor(&st, "cls_logits");
    let n = cs[0];
    let (bs, bbox) = tensor(&st, "bbox");
    let (ls, landm) = tensor(&st, "landm");
    let (ps, priors) = tensor(&st, "priors");
    assert_eq!(
        (cs, bs, ls, ps),
        (vec![n, 2], vec![n, 4], vec![n, 10], vec![n, 4])
    );
    Golden {
        padded_hw,
        json,
        cls,
        bbox,
        landm,
        priors,
    }
}

#[test]
fn ssd_priors_match_golden() {
    let g = golden();
    let got: Vec<f32> = ssd_priors(g.padded_hw, &LEVELS).concat();
    // 1e-6 absolute: the data README's tolerance for priors (an f32 implementation usually matches exactly).
    assert_close("priors vs TF graph", &got, &g.priors, 1e-6, 0.0);
}

/// Splits the graph's flat rows (level, y, x, a) back into per-level NCHW head tensors with the face probability.
fn levels_from_flat(g: &Golden) -> Vec<LevelData> {
    let [hp, wp] = g.padded_hw;
    let mut levels = Vec::new();
    let mut off = 0;
    for (i, &(stride, sizes)) in LEVELS.iter().enumerate() {
        let (h, w, a) = (hp.div_ceil(stride), wp.div_ceil(stride), 2);
        let mut scores = CpuTensor::zeros(&[1, a, h, w]);
        let mut bbox = CpuTensor::zeros(&[1, 4 * a, h, w]);
        let mut landm = CpuTensor::zeros(&[1, 10 * a, h, w]);
        for y in 0..h {
            for x in 0..w {
                for k in 0..a {
                    let r = off + (y * w + x) * a + k;
                    let (l0, l1) = (g.cls[2 * r], g.cls[2 * r + 1]);
                    // p(face) = 1 / (1 + exp(l0 − l1)): the 2-way softmax, stable for any logits.
                    scores.data[(k * h + y) * w + x] = 1.0 / (1.0 + (l0 - l1).exp());
                    for j in 0..4 {
                        bbox.data[((4 * k + j) * h + y) * w + x] = g.bbox[4 * r + j];
                    }
                    for j in 0..10 {
                        landm.data[((10 * k + j) * h + y) * w + x] = g.landm[10 * r + j];
                    }
                }
            }
        }
        off += h * w * a;
        levels.push(LevelData {
            scores,
            bbox,
            landm: Some(landm),
            stride,
            sizes: sizes.to_vec(),
            module: i as u32,
        });
    }
    assert_eq!(off * 2, g.cls.len(), "levels cover every golden row");
    levels
}

#[test]
fn golden_post_processing() {
    let g = golden();
    let levels = levels_from_flat(&g);
    let r = g.cls.len() / 2;
    let images = [DecodeImage {
        input_hw: g.padded_hw,
        scale: 1.0,
    }];
    let cpu = cpu_rows(&levels, 0, r, &SSD, &images);
    let gpu = gpu_rows(&levels, 0, r, &SSD, &images, DType::F32);
    if let Some(gpu) = &gpu {
        // Same tolerance as the random cases (tests/ops/decode.rs).
        assert_close("golden heads: gpu vs reference", gpu, &cpu, 1e-4, 1e-5);
    }
    for (name, rows) in [("reference", Some(cpu)), ("gpu", gpu)] {
        let Some(rows) = rows else { continue };
        let cand: Vec<&[f32]> = rows.chunks(16).filter(|row| row[15] > 0.5).collect();
        let want_count = g.json["candidates_above_threshold"].as_u64().unwrap() as usize;
        assert_eq!(cand.len(), want_count, "{name}: rows with score > 0.5");
        for det in g.json["detections"].as_array().unwrap() {
            let f = |v: &serde_json::Value| v.as_f64().unwrap() as f32;
            let mut want: Vec<f32> = det["box"].as_array().unwrap().iter().map(f).collect();
            for p in det["landmarks"].as_array().unwrap() {
                want.extend(p.as_array().unwrap().iter().map(f));
            }
            let score = f(&det["score"]);
            let best = cand
                .iter()
                .min_by(|a, b| {
                    let d = |r: &[f32]| (0..14).map(|j| (r[j] - want[j]).abs()).fold(0.0, f32::max);
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            // 0.05 px and 1e-4 in score: the data README's detection tolerances.
            assert_close(
                &format!("{name}: golden detection"),
                &best[..14],
                &want,
                0.05,
                0.0,
            );
            assert_close(
                &format!("{name}: golden score"),
                &best[15..],
                &[score],
                1e-4,
                0.0,
            );
        }
    }
}
