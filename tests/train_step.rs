//! One whole training step on the GPU (every backward shader, anchor targets, sampling "all", both losses) against
//! the CPU reference of the loss and backward pass (`reference::ssh_train`), on a 72×80 image with seeded random
//! weights and hand-placed faces that give M1 and M2 positives. Also the same step through `sshface train-step
//! --dump-grads`, whose file must hold the same numbers.

mod common;
#[path = "vgg_support/mod.rs"]
mod vgg_support;

use std::process::Command;

use common::*;
use sshface::convert::NamedTensor;
use sshface::model::weights::WeightFile;
use sshface::ops::ohem::{Normalise, Sampling};
use sshface::ops::preprocess::Preprocess;
use sshface::reference::preprocess::preprocess;
use sshface::reference::ssh_train::train_step;
use sshface::train::net::{Freeze, Init};
use sshface::train::step::{compile_step, StepConfig, StepLosses};
use sshface::train::trainer::Trainer;
use sshface::{GemmTier, GpuContext};

const HW: [usize; 2] = [72, 80];

/// Two faces near the M1 anchors (16 and 32 px) and one near the 64 px M2 anchor, offset so targets are not 0.
const GT: [[f32; 4]; 3] = [
    [10.0, 9.0, 25.0, 26.0],
    [17.0, 15.0, 50.0, 47.0],
    [6.0, 10.0, 68.0, 70.0],
];

/// `|got − want| ≤ tol · max|want|` over a whole tensor: the sums of a deep backward pass are reordered between
/// the GPU's tiled reductions and the reference's loops, so errors scale with the tensor's magnitude.
fn assert_tensor_close(name: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (i, err) = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .enumerate()
        .fold((0, 0f32), |a, (i, e)| if e > a.1 { (i, e) } else { a });
    assert!(
        err <= tol * scale.max(1e-12),
        "{name}: max error {err:e} at {i} (got {}, want {}), tolerance {tol} × max|want| {scale:e}",
        got[i],
        want[i]
    );
}

/// One GPU step (`gemm`: the register-tiled GEMM tier of the forward convs) against the CPU reference:
/// the losses within 1e-4 and every trainable gradient within 2e-3 of its largest magnitude. Returns the step's
/// losses and gradients, the weight file and the image.
fn step_matches_reference(
    ctx: &GpuContext,
    gemm: GemmTier,
) -> (
    StepLosses,
    Vec<NamedTensor>,
    std::path::PathBuf,
    image::RgbImage,
) {
    let tensors = vgg_support::random_weights(1, &vgg_support::GAINS);
    let path = vgg_support::write(&format!("train_step_w1_{}", gemm.name()), &tensors);
    let wf = WeightFile::open(&path).unwrap();
    let img = vgg_support::image(3, HW[1] as u32, HW[0] as u32);
    let cfg = StepConfig {
        sampling: Sampling::All,
        normalise: Normalise::Sampled,
        gemm,
    };
    let mut t = Trainer::new(ctx, &wf, Freeze::Caffe, cfg, Init::seed(0)).unwrap();
    let got = t.accumulate(ctx, img.as_raw(), HW, &GT, 1.0).unwrap();
    let grads = t.net.gradients(ctx).unwrap();

    let x = preprocess(img.as_raw(), &Preprocess::ssh(HW, 1.0).unwrap(), HW);
    let trainable = |l: &str| Freeze::Caffe.trains(l);
    let want = train_step(&wf, &x, &GT, &trainable).unwrap();
    println!("{gemm:?}: GPU {got:?}\nCPU {:?}", want.losses);
    assert!(
        got.sampled[0][0] > 0 && got.sampled[1][0] > 0,
        "positives in M1 and M2"
    );
    for k in 0..3 {
        for (which, g, w) in [
            ("cls", got.cls[k], want.losses[k][0]),
            ("bbox", got.bbox[k], want.losses[k][1]),
        ] {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{gemm:?} m{}.{which}: GPU {g}, CPU {w}",
                k + 1
            );
        }
    }
    let names: Vec<&String> = grads.iter().map(|g| &g.0).collect();
    let want_names: Vec<&String> = want.grads.iter().map(|g| &g.0).collect();
    assert_eq!(
        names, want_names,
        "the trainable parameters, in table order"
    );
    for ((name, shape, g), (_, wshape, w)) in grads.iter().zip(&want.grads) {
        assert_eq!(shape, wshape, "{name}");
        assert!(
            g.iter().all(|v| v.is_finite()),
            "{name}: non-finite gradient"
        );
        assert_tensor_close(&format!("{gemm:?} {name}"), g, w, 2e-3);
    }
    (got, grads, path, img)
}

/// The forward convs on the wide tier (which `Auto` takes on GPUs): the trainable weights are repacked in the
/// step, so a step after an SGD update must see the new weights; the same losses and gradients as the reference.
#[test]
fn wide_gemm_step_matches_the_cpu_reference() {
    let Some(ctx) = gpu() else { return };
    let (_, _, path, _) = step_matches_reference(ctx, GemmTier::Wide);
    // The step's plan really runs the wide tier, its weights packed inside the plan.
    let wf = WeightFile::open(&path).unwrap();
    let t = Trainer::new(
        ctx,
        &wf,
        Freeze::Caffe,
        StepConfig {
            sampling: Sampling::All,
            normalise: Normalise::Sampled,
            gemm: GemmTier::Wide,
        },
        Init::seed(0),
    )
    .unwrap();
    let sp = compile_step(ctx, &t.net, (HW, 1.0, GT.len()), &t.step, &mut |_| {}).unwrap();
    let kernels = sp.plan.kernels();
    let count = |e: &str| kernels.iter().filter(|k| k.1 == e).count();
    assert!(
        count("conv2d_gemm") + count("conv2d_gemm_v4") >= 20,
        "{kernels:?}"
    );
    assert_eq!(
        count("pack_kmajor"),
        count("conv2d_gemm") + count("conv2d_gemm_v4"),
        "{kernels:?}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn gpu_step_matches_the_cpu_reference() {
    let Some(ctx) = gpu() else { return };
    let (got, grads, path, img) = step_matches_reference(ctx, GemmTier::Small);

    // The same step through the CLI: the dump holds the losses and these gradients.
    let dir = scratch("train_step_cli");
    let (image, boxes, dump) = (
        dir.join("img.png"),
        dir.join("boxes.json"),
        dir.join("grads.safetensors"),
    );
    img.save(&image).unwrap();
    std::fs::write(&boxes, serde_json::to_string(&GT).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sshface"))
        .args(["train-step", "--weights"])
        .arg(&path)
        .arg("--image")
        .arg(&image)
        .arg("--boxes")
        .arg(&boxes)
        .args(["--scale", "1", "--sampling", "all", "--dump-grads"])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = WeightFile::open(&dump).unwrap();
    for k in 0..3 {
        for (which, v) in [("cls", got.cls[k]), ("bbox", got.bbox[k])] {
            let name = format!("loss.m{}.{which}", k + 1);
            assert_eq!(d.get(&name, &[]).unwrap(), &[v], "{name}");
            assert_eq!(
                report["losses"][format!("m{}", k + 1)][which]
                    .as_f64()
                    .unwrap() as f32,
                v
            );
        }
    }
    for (name, shape, g) in &grads {
        assert_eq!(
            d.get(name, shape).unwrap(),
            g.as_slice(),
            "{name} in the dump"
        );
    }
    assert_eq!(d.names().len(), 6 + grads.len());
}

/// `train-step` refuses what it cannot use, naming it.
#[test]
fn train_step_errors_name_the_input() {
    let dir = scratch("train_step_errors");
    let boxes = dir.join("boxes.json");
    std::fs::write(&boxes, "[[1, 2, 3]]").unwrap();
    let img = dir.join("img.png");
    vgg_support::image(1, 8, 8).save(&img).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sshface"))
            .arg("train-step")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let weights = vgg_support::write("train_step_zero", &vgg_support::zero_weights());
    let e = run(&[
        "--weights".as_ref(),
        weights.as_os_str(),
        "--image".as_ref(),
        img.as_os_str(),
        "--boxes".as_ref(),
        boxes.as_os_str(),
    ]);
    assert!(
        e.contains("boxes.json") && e.contains("[x1, y1, x2, y2]"),
        "{e}"
    );
    let missing = dir.join("missing.safetensors");
    let e = run(&[
        "--weights".as_ref(),
        missing.as_os_str(),
        "--image".as_ref(),
        img.as_os_str(),
        "--boxes".as_ref(),
        boxes.as_os_str(),
    ]);
    assert!(e.contains("missing.safetensors"), "{e}");
}
