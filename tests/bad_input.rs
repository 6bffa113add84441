//! Bad input at the CLI (issue 11; GPU faults, non-finite numbers in shaders and threads are tests/robustness.rs): weights holding NaN or infinity are refused by `detect --weights` and by
//! `convert` (which then writes nothing), and a truncated JPEG or PNG gives a warning naming it while its results
//! are still produced. The readers themselves are fuzzed (`fuzz/`, `tests/fuzz_corpus.rs`).

mod common;
#[path = "convert/tf_synth.rs"]
#[allow(dead_code)]
mod tf_synth;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sshface::convert::protobuf::write::Msg;
use sshface::convert::tf_graph::{Fold, RETINAFACE_MNV2};
use sshface::model::weights::WeightFile;
use tf_synth::{attr_tensor, node, Enc};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn sshface(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sshface"))
        .args(args)
        .output()
        .unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        s(&out.stdout),
        s(&out.stderr),
    )
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A Const node holding `vals` of `shape` (DT_FLOAT, tensor_content).
fn constant(name: &str, shape: &[usize], vals: &[f32]) -> Msg {
    let value = attr_tensor(1, shape, vals, Enc::Content);
    node(name, "Const", &[], &[("value", value)]).1
}

/// A frozen graph with every layer of the real RetinaFace table (weights of the right shapes, BatchNorm or BiasAdd
/// consumers), `bad` (if any) stored at element 5 of the weight of layer `at`.
fn retinaface_graph(at: &str, bad: Option<f32>) -> Vec<u8> {
    let mut g = Msg::new();
    let p = RETINAFACE_MNV2.prefix;
    for l in RETINAFACE_MNV2.layers {
        let conv = format!("{p}{}", l.tf_op);
        let depthwise = l.tf_op.ends_with("depthwise");
        let [o, i, kh, kw] = l.shape;
        // TF layouts: HWIO, depthwise [kh, kw, C, 1].
        let hwio = if depthwise {
            [kh, kw, o, 1]
        } else {
            [kh, kw, i, o]
        };
        let mut w: Vec<f32> = (0..o * i * kh * kw)
            .map(|k| (k % 5) as f32 * 0.01)
            .collect();
        if let (true, Some(v)) = (l.name == at, bad) {
            w[5] = v;
        }
        g.message(1, &constant(&format!("{conv}/w"), &hwio, &w));
        let op = if depthwise {
            "DepthwiseConv2dNative"
        } else {
            "Conv2D"
        };
        g.message(1, &node(&conv, op, &["x", &format!("{conv}/w")], &[]).1);
        let mut params = |n: usize, v: f32| -> Vec<String> {
            (1..=n)
                .map(|k| {
                    let name = format!("{conv}/p{k}");
                    g.message(1, &constant(&name, &[o], &vec![v; o]));
                    name
                })
                .collect()
        };
        let mut ins = vec![conv.clone()];
        match l.fold {
            Fold::BiasAdd => {
                ins.extend(params(1, 0.5));
                let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                g.message(1, &node(&format!("{conv}/bias"), "BiasAdd", &ins, &[]).1);
            }
            Fold::BatchNorm => {
                ins.extend(params(4, 1.0));
                let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                let mut eps = Msg::new();
                eps.f32(4, 1e-3);
                let attrs = [("epsilon", eps)];
                g.message(
                    1,
                    &node(&format!("{conv}/bn"), "FusedBatchNormV3", &ins, &attrs).1,
                );
            }
        }
    }
    g.finish()
}

/// `sshface convert` refuses a graph with a NaN or infinite weight, naming the tensor, and writes no file; the same
/// graph with finite values converts (so the refusal is the value's doing).
#[test]
fn convert_refuses_non_finite_weights_and_writes_nothing() {
    let dir = common::scratch("robust-convert");
    let (input, out) = (dir.join("frozen_graph.pb"), dir.join("out.safetensors"));
    let convert = || {
        sshface(&[
            "convert",
            "--from",
            "tf-graph",
            arg(&input),
            "-o",
            arg(&out),
        ])
    };
    std::fs::write(&input, retinaface_graph("", None)).unwrap();
    let (code, _, err) = convert();
    assert_eq!(code, 0, "{err}");
    let wf = WeightFile::open(&out).unwrap();
    assert_eq!(wf.names().len(), 2 * RETINAFACE_MNV2.layers.len());
    std::fs::remove_file(&out).unwrap();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        std::fs::write(&input, retinaface_graph("ssh1.conv5x5_2", Some(bad))).unwrap();
        let (code, _, err) = convert();
        assert_ne!(code, 0, "{bad}: {err}");
        assert!(
            err.contains("frozen_graph.pb")
                && err.contains("tensor ssh1.conv5x5_2.weight")
                && err.contains("non-finite"),
            "{bad}: {err}"
        );
        assert!(!out.exists(), "{bad}: a file was written");
        let leftovers: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| *p != input)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// `detect --weights` with a NaN in one tensor of otherwise good weights (retinaface-mnv2, F32), or an infinity
/// (ssh-vgg16, F16): an error naming the file and the tensor, nothing on stdout.
#[test]
fn detect_refuses_weights_with_nan() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("robust-weights");
    let good = WeightFile::from_bytes("bundled", sshface::detector::BUNDLED_RETINAFACE).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = good
        .names()
        .into_iter()
        .map(|n| {
            let shape = good.shape(&n).unwrap().to_vec();
            let mut v = good.get(&n, &shape).unwrap().to_vec();
            if n == "backbone.block3.dw.weight" {
                v[100] = f32::NAN;
            }
            (n, shape, v)
        })
        .collect();
    let path = dir.join("nan.safetensors");
    sshface::convert::write_safetensors(&path, &tensors, &Default::default()).unwrap();
    let img = format!("{DATA}/astronaut.png");
    let (code, out, err) = sshface(&["detect", "--weights", arg(&path), &img]);
    assert_ne!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("nan.safetensors")
            && err.contains(
                "tensor backbone.block3.dw.weight holds the non-finite value NaN at element 100"
            ),
        "{err}"
    );
    // ssh-vgg16, from an F16 file: the same refusal, before any tensor is looked up by name.
    let inf16 = 0x7c00u16.to_le_bytes();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![1], &inf16).unwrap();
    let path = dir.join("inf16.safetensors");
    std::fs::write(
        &path,
        safetensors::serialize([("conv1_1.bias", view)], None).unwrap(),
    )
    .unwrap();
    let (code, out, err) = sshface(&[
        "detect",
        "--model",
        "ssh-vgg16",
        "--weights",
        arg(&path),
        &img,
    ]);
    assert_ne!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("inf16.safetensors")
            && err.contains("tensor conv1_1.bias holds the non-finite value inf at element 0"),
        "{err}"
    );
}

/// Issue 11 part 7: a PNG and a JPEG cut in the middle of their pixel data, given as files and inside a tar: each
/// gets a warning on stderr naming it, a result row with its full size, exit 0; the astronaut's face lies in the
/// rows that decoded and is still found.
#[test]
fn truncated_images_warn_and_still_give_results() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("robust-truncated");
    let png = std::fs::read(format!("{DATA}/astronaut.png")).unwrap();
    let jpg = std::fs::read(format!("{DATA}/grace_hopper.jpg")).unwrap();
    let (cut_png, cut_jpg) = (dir.join("cut.png"), dir.join("cut.jpg"));
    std::fs::write(&cut_png, &png[..png.len() * 3 / 5]).unwrap();
    std::fs::write(&cut_jpg, &jpg[..jpg.len() / 2]).unwrap();
    let tar_path = dir.join("shard.tar");
    let mut t = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
    t.append_path_with_name(&cut_jpg, "in/cut.jpg").unwrap();
    t.finish().unwrap();
    drop(t);
    let (code, out, err) = sshface(&["detect", arg(&cut_png), arg(&cut_jpg), arg(&tar_path)]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let tar_entry = format!("{}/in/cut.jpg", tar_path.display());
    let names = [
        arg(&cut_png).to_string(),
        arg(&cut_jpg).to_string(),
        tar_entry,
    ];
    assert_eq!(rows.len(), 3, "{out}");
    for (row, name) in rows.iter().zip(&names) {
        assert_eq!(row["image"], name.as_str(), "{out}");
        assert!(row["faces"].is_array(), "{row}");
        let kind = if name.ends_with("png") {
            "truncated or corrupt PNG"
        } else {
            "truncated JPEG"
        };
        let warning = format!("sshface: warning: image {name}: {kind}");
        assert!(err.contains(&warning), "no {warning:?} in {err}");
    }
    assert_eq!(
        (rows[0]["width"].as_u64(), rows[0]["height"].as_u64()),
        (Some(512), Some(512))
    );
    let face = &rows[0]["faces"][0];
    assert!(face["score"].as_f64().unwrap() > 0.9, "{}", rows[0]);
    // The face of the whole image is at [177, 60, 270, 181] (README).
    let b: Vec<f64> = face["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        (b[0] - 177.3).abs() < 3.0 && (b[3] - 181.3).abs() < 3.0,
        "{b:?}"
    );
    assert!(
        err.contains("3 images") && err.contains("0 failed"),
        "{err}"
    );
}
