//! The measurement commands: `bench --json` records, `profile --trace` Chrome traces with per-step FLOPs, and
//! `--precision` parsing. Tiny sizes and one iteration: these check fields and wiring, never speed.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

fn sshface(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sshface"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON Lines of a successful `bench --json` run.
fn bench_json(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["bench", "--json", "--iters", "1"];
    all.extend_from_slice(args);
    let out = sshface(&all);
    assert!(out.status.success(), "bench {args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn num(r: &Value, key: &str) -> f64 {
    r[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {r}"))
}

/// What every `bench --json` line starts with: the version, the build and the adapter.
fn assert_origin(r: &Value) {
    assert_eq!(r["sshface"], env!("CARGO_PKG_VERSION"));
    for key in ["build", "adapter", "backend", "device_type", "driver"] {
        assert!(
            r[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} in {r}"
        );
    }
}

#[test]
fn bench_json_has_every_field() {
    if common::gpu().is_none() {
        return;
    }
    let recs = bench_json(&["--size", "64x32", "--batch", "1,2", "--precision", "f32"]);
    assert_eq!(recs.len(), 2, "one line per batch size: {recs:?}");
    for (r, batch) in recs.iter().zip([1.0, 2.0]) {
        assert_origin(r);
        assert!(
            r["conv_path"].as_str().is_some_and(|s| !s.is_empty()),
            "{r}"
        );
        assert_eq!(r["precision"], "f32");
        assert_eq!(r["requested_precision"], "f32");
        assert_eq!(r["model"], "retinaface-mnv2");
        assert_eq!(r["weights"], "bundled");
        assert_eq!((num(r, "width"), num(r, "height")), (64.0, 32.0));
        assert!(r["scale"].is_null());
        assert_eq!(num(r, "batch"), batch);
        assert_eq!(num(r, "iters"), 1.0);
        let (median, min) = (num(r, "ms_per_batch_median"), num(r, "ms_per_batch_min"));
        assert!(min > 0.0 && min <= median, "{r}");
        assert!((num(r, "ms_per_image") * batch - median).abs() < 1e-9 * median.max(1.0));
        assert!((num(r, "images_per_s") * num(r, "ms_per_image") - 1e3).abs() < 1e-6);
        assert!(num(r, "faces_per_image") >= 0.0);
        // The bundled weights alone are 6.1 MB; the arena adds the feature maps.
        assert!(num(r, "gpu_memory_bytes") > 6.1e6, "{r}");
    }
    assert!(
        num(&recs[1], "gpu_memory_bytes") > num(&recs[0], "gpu_memory_bytes"),
        "batch 2 holds larger feature maps than batch 1"
    );
}

#[test]
fn bench_compares_precisions_side_by_side() {
    let Some(ctx) = common::gpu() else { return };
    // What auto resolves to on this adapter, by the library's own rule (tests/precision.rs pins the rule).
    let resolved = sshface::gpu::Numerics::resolve(sshface::Precision::Auto, ctx)
        .unwrap()
        .precision
        .name();
    let recs = bench_json(&["--size", "32x32", "--batch", "1", "--precision", "f32,auto"]);
    let got: Vec<(&str, &str)> = recs
        .iter()
        .map(|r| {
            (
                r["requested_precision"].as_str().unwrap(),
                r["precision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("f32", "f32"), ("auto", resolved)]);
}

/// ssh-vgg16 without the authors' model: seeded random weights of the spec's shapes, all counted in the memory.
#[test]
fn bench_vgg_with_random_weights() {
    if common::gpu().is_none() {
        return;
    }
    let recs = bench_json(&[
        "--model",
        "ssh-vgg16",
        "--random-weights",
        "7",
        "--scale",
        "1",
        "--size",
        "40x36",
        "--batch",
        "1",
    ]);
    let r = &recs[0];
    assert_eq!(r["model"], "ssh-vgg16");
    assert_eq!(r["weights"], "random (seed 7)");
    assert_eq!(num(r, "scale"), 1.0);
    // spec §7: 19,766,372 stored values, 4 bytes each at f32 and 2 (conv weights) at f16.
    let bytes = if r["precision"] == "f32" { 4.0 } else { 2.0 };
    assert!(num(r, "gpu_memory_bytes") > 19_766_372.0 * bytes, "{r}");
}

/// `--train`: one iteration of two steps and an update at 48x40 (M1's anchors fit: two faces), every figure there.
#[test]
fn bench_train_reports_training_throughput() {
    if common::gpu().is_none() {
        return;
    }
    let args: Vec<&str> = "--train --model ssh-vgg16 --random-weights 1 --size 48x40"
        .split(' ')
        .collect();
    let recs = bench_json(&args);
    assert_eq!(recs.len(), 1, "one line per configuration: {recs:?}");
    let r = &recs[0];
    assert_origin(r);
    assert_eq!(r["mode"], "train");
    assert_eq!(r["precision"], "f32");
    assert_eq!(r["model"], "ssh-vgg16");
    assert_eq!(r["weights"], "random (seed 1)");
    assert_eq!(r["freeze"], "caffe");
    assert_eq!(r["sampling"], "ohem");
    assert_eq!((num(r, "width"), num(r, "height")), (48.0, 40.0));
    assert_eq!(
        (num(r, "scale"), num(r, "iter_size"), num(r, "iters")),
        (1.0, 2.0, 1.0)
    );
    assert_eq!(num(r, "faces"), 2.0, "{r}");
    for key in [
        "ms_per_iter_median",
        "ms_per_iter_min",
        "ms_per_image",
        "images_per_s",
        "gflop_per_image",
        "gflop_per_s",
    ] {
        assert!(num(r, key) > 0.0, "{key} in {r}");
    }
    assert!((num(r, "ms_per_image") * 2.0 - num(r, "ms_per_iter_median")).abs() < 1e-6);
    let achieved = num(r, "gflop_per_image") * num(r, "images_per_s");
    assert!((num(r, "gflop_per_s") - achieved).abs() < 1e-6 * achieved);
    // Parameters (19,766,372 f32) plus the trained layers' gradients and momentum, plus the step's arena.
    assert!(num(r, "gpu_memory_bytes") > 3.0 * 19_000_000.0 * 4.0, "{r}");
}

/// `--train` names why it cannot run before opening a GPU, and its options need it.
#[test]
fn bench_train_needs_ssh_vgg16() {
    let out = sshface(&["bench", "--train", "--model", "retinaface-mnv2"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("only ssh-vgg16 has a training step") && err.contains("detection only"),
        "{err}"
    );
    let out = sshface(&["bench", "--iter-size", "4"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--train"), "{}", stderr(&out));
}

#[test]
fn profile_trace_covers_every_step_with_conv_flops() {
    if common::gpu().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sshface-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.json");
    let out = sshface(&[
        "profile",
        "--size",
        "64x64",
        "--precision",
        "f32",
        "--all",
        "--trace",
        path.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    if err.contains("lacks TIMESTAMP_QUERY_INSIDE_PASSES") {
        eprintln!("SKIP (no timestamps inside passes): {err}");
        return;
    }
    assert!(out.status.success(), "{err}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    // `--all` prints "<ms> ms  <kernel> <label>" per step, in order.
    let labels: Vec<&str> = stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("ms"))
        .map(|l| l.split_whitespace().nth(3).unwrap())
        .collect();
    let trace: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let events: Vec<&Value> = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X")
        .collect();
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(labels.len() > 50, "steps listed by --all: {stdout}");
    assert_eq!(names, labels, "one event per step, in order");
    assert!(stdout.contains(&format!("{} steps", labels.len())));
    let mut end = 0.0;
    for e in &events {
        let (ts, dur) = (num(e, "ts"), num(e, "dur"));
        assert!(dur >= 0.0 && ts >= end - 1e-3, "steps run in order: {e}");
        end = ts + dur;
        assert!(
            e["args"]["shader"].is_string() && e["args"]["entry"].is_string(),
            "{e}"
        );
    }
    let flops = |label: &str| {
        let e = events.iter().find(|e| e["name"] == label).unwrap();
        e["args"]["flops"].as_u64().unwrap()
    };
    // 2·N·C_out·Ho·Wo·(C_in/groups)·KH·KW. conv1: 3 → 32, 3×3 stride 2, 64² → 32².
    assert_eq!(flops("backbone.conv1"), 2 * 32 * 32 * 32 * 3 * 3 * 3);
    // block1.dw: depthwise (groups = 96), stride 2, 32² → 16².
    assert_eq!(flops("backbone.block1.dw"), 2 * 96 * 16 * 16 * 9);
    // block1.project: 1×1, 96 → 24 at 16².
    assert_eq!(flops("backbone.block1.project"), 2 * 24 * 16 * 16 * 96);
    assert_eq!(flops("preprocess.image0"), 0);
}

#[test]
fn precision_choices_are_accepted_and_reported() {
    let Some(ctx) = common::gpu() else { return };
    let img = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/astronaut.png");
    let f32_run = sshface(&["detect", "--precision", "f32", img]);
    assert!(f32_run.status.success(), "{}", stderr(&f32_run));
    assert!(
        stderr(&f32_run).contains("precision f32"),
        "{}",
        stderr(&f32_run)
    );
    let auto = sshface(&["detect", img]);
    assert!(auto.status.success(), "{}", stderr(&auto));
    let faces = |o: &Output| {
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["faces"].as_array().unwrap().len()
    };
    assert_eq!(
        faces(&auto),
        faces(&f32_run),
        "the same faces at auto and f32"
    );
    let coop = sshface(&["detect", "--precision", "f16-coop", img]);
    if common::coop_sizes(ctx).is_empty() {
        assert!(!coop.status.success());
        assert!(
            stderr(&coop).contains("f16-coop needs"),
            "{}",
            stderr(&coop)
        );
    } else {
        assert!(coop.status.success(), "{}", stderr(&coop));
        assert!(
            stderr(&coop).contains("precision f16-coop"),
            "{}",
            stderr(&coop)
        );
    }
    // The adapter line names what auto resolved to, by the library's rule (tests/precision.rs pins it).
    let resolved = sshface::gpu::Numerics::resolve(sshface::Precision::Auto, ctx).unwrap();
    assert!(
        stderr(&auto).contains(&format!("precision {}", resolved.describe())),
        "{}",
        stderr(&auto)
    );
}

/// Usage errors need no GPU: clap rejects them before any adapter is opened.
#[test]
fn unknown_precision_is_a_usage_error() {
    for args in [
        &["detect", "--precision", "f64", "x.png"][..],
        &["bench", "--precision", "f32,f64"],
        &["profile", "--precision", "f64"],
        &["eval", "--images", "x", "--out", "y", "--precision", "f64"],
    ] {
        let out = sshface(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("f64") && err.contains("f16-coop"),
            "{args:?}: {err}"
        );
    }
    let out = sshface(&["bench", "--random-weights", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("ssh-vgg16 only"), "{}", stderr(&out));
}
