//! `sshface train` end to end on a synthetic WIDER-format folder: checkpoints every --snapshot iterations, the jsonl
//! log, `--resume` continuing bit for bit where a straight run would be, checkpoints `detect` loads, an unreadable
//! image skipped with a warning, and the errors of bad invocations.

mod common;
#[path = "train_support/mod.rs"]
mod train_support;
#[path = "vgg_support/mod.rs"]
mod vgg_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use sshface::model::weights::WeightFile;

const HW: [usize; 2] = [64, 64];

fn sshface(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sshface"));
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.output().unwrap()
}

/// A synthetic training folder and an ImageNet-style init file (VGG layers only).
fn setup(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = scratch(name);
    let set = train_support::synth_set(5, HW, 9, 1..=2, 18..=36);
    let ann = train_support::write_wider_folder(&dir, &set).unwrap();
    let vgg: Vec<_> = vgg_support::random_weights(4, &vgg_support::GAINS)
        .into_iter()
        .filter(|t| {
            t.0.starts_with("conv") && !t.0.contains("_128") && !t.0.starts_with("conv4_fuse")
        })
        .collect();
    let init = dir.join("vgg16.safetensors");
    sshface::convert::write_safetensors(&init, &vgg, &Default::default()).unwrap();
    (dir, ann, init)
}

const RECIPE: [&str; 10] = [
    "train",
    "--iter-size",
    "2",
    "--snapshot",
    "2",
    "--freeze",
    "backbone",
    "--new-layers",
    "he",
    "--lr",
];

/// The recipe with `extra` flags (the images at factor 1 unless they give `--scale`).
fn train(
    ann: &Path,
    init: &Path,
    images: &Path,
    out: &Path,
    iters: &str,
    extra: &[&str],
) -> Output {
    let mut args = RECIPE.to_vec();
    args.extend(["0.01", "--seed", "5", "--iters", iters]);
    if !extra.contains(&"--scale") {
        args.extend(["--scale", "64", "--max-size", "64"]);
    }
    args.extend(extra);
    sshface(
        &args,
        &[
            ("--annotations", ann),
            ("--init", init),
            ("--images", images),
            ("--out", out),
        ],
    )
}

fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let wf = WeightFile::open(path).unwrap();
    let mut names = wf.names();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let shape = wf.shape(&n).unwrap().to_vec();
            let v = wf.get(&n, &shape).unwrap().to_vec();
            (n, v)
        })
        .collect()
}

/// Trains `first` iterations then resumes to `total` in `dir/resumed`, and `total` straight in `dir/straight`, all
/// with `extra`; checks that the two final checkpoints are equal bit for bit. Returns the resumed runs' stderr and
/// the final tensors.
fn resume_vs_straight(
    dir: &Path,
    ann: &Path,
    init: &Path,
    [first, total]: [&str; 2],
    extra: &[&str],
) -> ([String; 2], Vec<(String, Vec<f32>)>) {
    let images = dir.join("images");
    let (resumed, straight) = (dir.join("resumed"), dir.join("straight"));
    let ok = |o: Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let again = [extra, &["--resume"]].concat();
    let err = [
        ok(train(ann, init, &images, &resumed, first, extra)),
        ok(train(ann, init, &images, &resumed, total, &again)),
    ];
    ok(train(ann, init, &images, &straight, total, extra));
    let ckpt = format!("ssh_vgg16_iter_{total}.safetensors");
    let (a, b) = (
        tensors(&resumed.join(&ckpt)),
        tensors(&straight.join(&ckpt)),
    );
    assert_eq!(a.len(), b.len());
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{n}: resumed run differs from the straight one");
    }
    (err, a)
}

#[test]
fn train_checkpoints_logs_and_resumes_exactly() {
    if gpu().is_none() {
        return;
    }
    let (dir, ann, init) = setup("train_cli");
    let images = dir.join("images");
    let resumed = dir.join("resumed");
    let (err, a) = resume_vs_straight(&dir, &ann, &init, ["4", "6"], &[]);
    assert!(
        err[0].contains("initialised N(0, 2/fan_in) (He)"),
        "{}",
        err[0]
    );
    assert!(err[1].contains("resuming at iteration 4"), "{}", err[1]);
    for it in [2, 4] {
        assert!(resumed
            .join(format!("ssh_vgg16_iter_{it}.safetensors"))
            .exists());
        assert!(resumed
            .join(format!("ssh_vgg16_iter_{it}.solver.safetensors"))
            .exists());
    }
    assert_eq!(a.len(), 74);
    // Trained layers moved, frozen ones did not.
    let first = tensors(&resumed.join("ssh_vgg16_iter_2.safetensors"));
    let moved = |name: &str| {
        let i = a.iter().position(|t| t.0 == name).unwrap();
        a[i].1 != first[i].1
    };
    assert!(moved("m1.ssh_cls_score.weight") && moved("conv4_fuse_final.bias"));
    assert!(!moved("conv5_3.weight") && !moved("conv1_1.bias"));

    let log = std::fs::read_to_string(resumed.join("train.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "{log}");
    for (k, l) in lines.iter().enumerate() {
        assert_eq!(l["iteration"], k + 1);
        assert_eq!(l["lr"].as_f64().unwrap() as f32, 0.01);
        assert!(l["images_per_s"].as_f64().unwrap() > 0.0);
        assert!(l["time"]["gflop"].as_f64().unwrap() > 0.1, "{l}");
        for m in ["m1", "m2", "m3"] {
            for w in ["cls", "bbox"] {
                assert!(l["loss"][m][w].as_f64().unwrap().is_finite(), "{l}");
            }
        }
    }
    // The checkpoint is a detector's weight file.
    let img = images.join(train_support::EVENT).join("0000.png");
    let ckpt = resumed.join("ssh_vgg16_iter_6.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_sshface"))
        .args([
            "detect",
            "--model",
            "ssh-vgg16",
            "--scale",
            "1",
            "--weights",
        ])
        .arg(&ckpt)
        .arg(&img)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The losses of each line of a run's log.
fn logged_losses(out: &Path) -> Vec<serde_json::Value> {
    let log = std::fs::read_to_string(out.join("train.jsonl")).unwrap();
    let line = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].clone();
    log.lines().map(line).collect()
}

/// `--sampling random` draws a seed per image visit; `--resume` draws the same ones, so 1 + 1 resumed iterations
/// equal 2 straight ones, losses and weights. At factor 2 M1 labels more than the 256 anchors kept per image, so
/// the seeds choose.
#[test]
fn random_sampling_resumes_exactly() {
    if gpu().is_none() {
        return;
    }
    let (dir, ann, init) = setup("train_cli_random");
    let random = [
        "--sampling",
        "random",
        "--scale",
        "128",
        "--max-size",
        "128",
    ];
    resume_vs_straight(&dir, &ann, &init, ["1", "2"], &random);
    let losses = logged_losses(&dir.join("straight"));
    assert_eq!(logged_losses(&dir.join("resumed")), losses);
    for l in &losses {
        let kept = l["m1"]["positives"].as_u64().unwrap() + l["m1"]["negatives"].as_u64().unwrap();
        assert_eq!(
            kept,
            2 * 256,
            "two images, 256 M1 anchors sampled from each: {l}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn train_skips_unreadable_images_and_refuses_bad_invocations() {
    if gpu().is_none() {
        return;
    }
    let (dir, ann, init) = setup("train_cli_errors");
    let images = dir.join("images");
    // A record whose image is not there: skipped with a warning naming it.
    let mut text = std::fs::read_to_string(&ann).unwrap();
    text.insert_str(0, "0--synthetic/missing.png\n1\n1 1 20 20 0 0 0 0 0 0\n");
    let broken = dir.join("with_missing.txt");
    std::fs::write(&broken, text).unwrap();
    let out = dir.join("out");
    let o = train(&broken, &init, &images, &out, "3", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("skipping") && err.contains("missing.png"),
        "{err}"
    );

    let run = |extra: &[&str], paths: &[(&str, &Path)]| {
        let mut args = vec!["train"];
        args.extend(extra);
        let o = sshface(&args, paths);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let base = [
        ("--init", init.as_path()),
        ("--images", images.as_path()),
        ("--out", out.as_path()),
    ];
    let e = run(
        &["--model", "retinaface-mnv2"],
        &[&base[..], &[("--annotations", ann.as_path())]].concat(),
    );
    assert!(e.contains("only ssh-vgg16"), "{e}");
    let missing = dir.join("nope.txt");
    let e = run(
        &[],
        &[&base[..], &[("--annotations", missing.as_path())]].concat(),
    );
    assert!(e.contains("nope.txt"), "{e}");
    let e = run(
        &["--iter-size", "0"],
        &[&base[..], &[("--annotations", ann.as_path())]].concat(),
    );
    assert!(e.contains("--iter-size"), "{e}");
    // An init file without the backbone names the missing layer.
    let empty = dir.join("empty.safetensors");
    let bias = vec![("m1.ssh_3x3.bias".to_string(), vec![128], vec![0.0; 128])];
    sshface::convert::write_safetensors(&empty, &bias, &Default::default()).unwrap();
    let e = run(
        &[],
        &[
            ("--init", empty.as_path()),
            ("--images", images.as_path()),
            ("--out", out.as_path()),
            ("--annotations", ann.as_path()),
        ],
    );
    assert!(e.contains("conv1_1") && e.contains("VGG-16"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
