//! The training engine on the GPU: external tensors that outlive plans, gradient accumulation across runs and
//! plans, the SGD update on the live parameters, checkpoints that `detect` loads, and overfitting one image.

mod common;
#[path = "vgg_support/mod.rs"]
mod vgg_support;

use common::*;
use sshface::gpu::Graph;
use sshface::model::weights::WeightFile;
use sshface::ops::conv2d::Conv2d;
use sshface::ops::conv2d_grad::{conv2d_grad_params, ParamGrads};
use sshface::ops::ohem::{Normalise, Sampling};
use sshface::ops::preprocess::Preprocess;
use sshface::reference::preprocess::preprocess;
use sshface::reference::ssh_train::sampled_losses;
use sshface::train::net::{Freeze, Init};
use sshface::train::step::StepConfig;
use sshface::train::trainer::Trainer;
use sshface::GemmTier;

/// Gradient accumulators bound as external tensors keep their values across runs and across plans.
#[test]
fn external_tensors_accumulate_across_runs_and_plans() {
    let Some(ctx) = gpu() else { return };
    let (c, side) = (3, 5);
    let w = ctx
        .weight("w", &rand_vec(1, c * c * 9, -1.0, 1.0), &[c, c, 3, 3])
        .unwrap();
    let conv = Conv2d::new(w, None).with_pad([1, 1, 1, 1]);
    let gw = ctx
        .trainable("w.grad", &vec![0.0; c * c * 9], &[c, c, 3, 3])
        .unwrap();
    let gb = ctx.trainable("b.grad", &vec![0.0; c], &[c]).unwrap();
    let shape = [1, c, side, side];
    let x = rand_vec(2, c * side * side, -1.0, 1.0);
    let dy = rand_vec(3, c * side * side, -1.0, 1.0);
    let plan = || {
        let mut g = Graph::new();
        let xi = g.input("x", &shape).unwrap();
        let dyi = g.input("dy", &shape).unwrap();
        let acc = ParamGrads {
            weight: g.external(&gw).unwrap(),
            bias: g.external(&gb).unwrap(),
        };
        conv2d_grad_params(&mut g, "dw", xi, dyi, &conv, Some(acc)).unwrap();
        let p = g.compile(ctx).unwrap();
        p.write(ctx, xi, &x).unwrap();
        p.write(ctx, dyi, &dy).unwrap();
        p
    };
    let (p1, p2) = (plan(), plan());
    p1.run(ctx, &[]).unwrap();
    let once_w = ctx.read_weight(&gw).unwrap();
    let once_b = ctx.read_weight(&gb).unwrap();
    assert!(once_w.iter().any(|&v| v != 0.0));
    p1.run(ctx, &[]).unwrap();
    p2.run(ctx, &[]).unwrap();
    let thrice_w: Vec<f32> = once_w.iter().map(|v| 3.0 * v).collect();
    let thrice_b: Vec<f32> = once_b.iter().map(|v| 3.0 * v).collect();
    assert_close(
        "weight grad ×3",
        &ctx.read_weight(&gw).unwrap(),
        &thrice_w,
        1e-5,
        1e-5,
    );
    assert_close(
        "bias grad ×3",
        &ctx.read_weight(&gb).unwrap(),
        &thrice_b,
        1e-5,
        1e-5,
    );
    assert_eq!(p1.arena_bytes(), p2.arena_bytes());
}

fn small_net(seed: u64) -> WeightFile {
    let path = vgg_support::write(
        &format!("train_gpu_{seed}"),
        &vgg_support::random_weights(seed, &vgg_support::GAINS),
    );
    WeightFile::open(&path).unwrap()
}

const ALL: StepConfig = StepConfig {
    sampling: Sampling::All,
    normalise: Normalise::Sampled,
    gemm: GemmTier::Auto,
};

/// Two faces an M1 anchor (16 or 32 px) and an M2 anchor (64 px) match in a 96×80 image.
fn faces() -> Vec<[f32; 4]> {
    vec![[8.0, 8.0, 39.0, 39.0], [30.0, 10.0, 93.0, 73.0]]
}

/// Accumulating one image twice doubles every gradient; the losses are those of one step each time.
#[test]
fn accumulation_sums_gradients() {
    let Some(ctx) = gpu() else { return };
    let wf = small_net(11);
    let img = vgg_support::image(5, 96, 80);
    let mut t = Trainer::new(ctx, &wf, Freeze::Backbone, ALL, Init::seed(0)).unwrap();
    let l1 = t
        .accumulate(ctx, img.as_raw(), [80, 96], &faces(), 1.0)
        .unwrap();
    let g1 = t.net.gradients(ctx).unwrap();
    let l2 = t
        .accumulate(ctx, img.as_raw(), [80, 96], &faces(), 1.0)
        .unwrap();
    let g2 = t.net.gradients(ctx).unwrap();
    assert_eq!(l1, l2, "same image, same losses");
    assert!(
        l1.sampled[0][0] > 0 && l1.sampled[1][0] > 0,
        "positives in M1 and M2: {l1:?}"
    );
    for ((n, _, a), (_, _, b)) in g1.iter().zip(&g2) {
        let twice: Vec<f32> = a.iter().map(|v| 2.0 * v).collect();
        assert_close(n, b, &twice, 1e-6, 1e-5);
    }
    // Backbone frozen: gradients only for the 24 new layers (fusion 3, modules 3 × 7).
    assert_eq!(
        g1.len(),
        2 * 24,
        "{:?}",
        g1.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    assert!(g1
        .iter()
        .all(|g| g.0.ends_with(".grad") && !g.0.starts_with("conv5_3")));
}

const LR: f32 = 0.001;
const HW: [usize; 2] = [128, 128];
/// A 32 px face for M1 and a 64 px one for M2.
const FACES: [[f32; 4]; 2] = [[8.0, 8.0, 39.0, 39.0], [40.0, 40.0, 103.0, 103.0]];

/// SGD on one image lowers its loss; the checkpoint loads in the detector.
#[test]
fn overfits_one_image_and_checkpoint_detects() {
    let Some(ctx) = gpu() else { return };
    let wf = small_net(12);
    let img = vgg_support::image(6, HW[1] as u32, HW[0] as u32);
    let ohem = StepConfig {
        sampling: Sampling::SSH,
        normalise: Normalise::Sampled,
        gemm: GemmTier::Auto,
    };
    let mut t = Trainer::new(ctx, &wf, Freeze::Backbone, ohem, Init::seed(0)).unwrap();
    let first = t.accumulate(ctx, img.as_raw(), HW, &FACES, 1.0).unwrap();
    t.update(ctx, LR, 1).unwrap();
    let mut last = first;
    for _ in 0..15 {
        last = t.accumulate(ctx, img.as_raw(), HW, &FACES, 1.0).unwrap();
        t.update(ctx, LR, 1).unwrap();
    }
    println!(
        "loss {:.4} → {:.4}: {first:?} → {last:?}",
        first.total(),
        last.total()
    );
    assert!(last.total().is_finite() && last.total() < 0.7 * first.total());
    let dir = scratch("train_gpu_ckpt");
    let path = dir.join("ckpt.safetensors");
    t.net.save(ctx, &path, &Default::default()).unwrap();
    let det = sshface::Detector::builder()
        .model(sshface::Model::SshVgg16)
        .weights(&path)
        .protocol(sshface::Protocol::Scale(1.0))
        .build()
        .unwrap();
    det.detect(&img).unwrap();
    // Frozen layers are saved unchanged.
    let saved = WeightFile::open(&path).unwrap();
    assert_eq!(
        saved.get("conv3_1.weight", &[256, 128, 3, 3]).unwrap(),
        wf.get("conv3_1.weight", &[256, 128, 3, 3]).unwrap()
    );
}

/// An init file in torchvision's layout (`features.N.*`, classifier tensors beside) initialises the backbone; the
/// new layers are drawn, the classifier is ignored, and each is said in the notes.
#[test]
fn torchvision_names_initialise_the_backbone() {
    let Some(ctx) = gpu() else { return };
    let index = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
    let vgg: Vec<_> = vgg_support::random_weights(13, &vgg_support::GAINS)
        .into_iter()
        .take(26)
        .collect();
    assert_eq!(vgg[25].0, "conv5_3.bias");
    let mut tv: Vec<_> = vgg
        .iter()
        .enumerate()
        .map(|(i, (n, s, v))| {
            let suffix = n.rsplit('.').next().unwrap();
            (
                format!("features.{}.{suffix}", index[i / 2]),
                s.clone(),
                v.clone(),
            )
        })
        .collect();
    tv.push(("classifier.0.bias".into(), vec![4], vec![0.5; 4]));
    let wf = WeightFile::open(&vgg_support::write("train_gpu_torchvision", &tv)).unwrap();
    let net = sshface::train::net::TrainNet::load(ctx, &wf, Freeze::Caffe, Init::seed(1)).unwrap();
    let notes = net.notes.join("\n");
    assert!(notes.contains("features.10.* → conv3_1"), "{notes}");
    assert!(
        notes.contains("ignored tensors of no layer: classifier.0.bias"),
        "{notes}"
    );
    assert!(
        notes.contains("N(0, 0.01)") && notes.contains("m3.ssh_bbox_pred"),
        "{notes}"
    );
    let params = net.parameters(ctx).unwrap();
    for (n, _, v) in &vgg {
        let got = params.iter().find(|p| &p.0 == n).unwrap();
        assert!(&got.2 == v, "{n}");
    }
    let head = params
        .iter()
        .find(|p| p.0 == "m1.ssh_cls_score.weight")
        .unwrap();
    let std = (head.2.iter().map(|v| v * v).sum::<f32>() / head.2.len() as f32).sqrt();
    assert!((0.008..0.012).contains(&std), "new layer std {std}");
    let bias = params
        .iter()
        .find(|p| p.0 == "m1.ssh_cls_score.bias")
        .unwrap();
    assert!(bias.2.iter().all(|&b| b == 0.0));
}

/// Bad images and boxes are errors naming what was expected, before any GPU work.
#[test]
fn bad_steps_are_errors() {
    let Some(ctx) = gpu() else { return };
    let wf = small_net(14);
    let mut t = Trainer::new(ctx, &wf, Freeze::Backbone, ALL, Init::seed(0)).unwrap();
    let rgb = vec![0u8; 40 * 48 * 3];
    let e = t
        .accumulate(ctx, &rgb[1..], [40, 48], &[], 1.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("48x40") && e.contains("5760"), "{e}");
    for b in [[10.0, 10.0, 5.0, 20.0], [0.0, f32::NAN, 4.0, 4.0]] {
        let e = t
            .accumulate(ctx, &rgb, [40, 48], &[b], 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[x1, y1, x2, y2]"), "{e}");
    }
    let e = t.update(ctx, f32::NAN, 1).unwrap_err().to_string();
    assert!(e.contains("learning rate"), "{e}");
    // A compiled step refuses an image of another size.
    t.accumulate(ctx, &rgb, [40, 48], &[], 1.0).unwrap();
    let sp = sshface::train::step::compile_step(ctx, &t.net, ([40, 48], 1.0, 0), &ALL, &mut |_| {})
        .unwrap();
    let e = sshface::train::step::run_step(ctx, &sp, &rgb[..100], &[], 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("100 bytes"), "{e}");
}

/// A plan bakes in the sampling kind and counts, not the random seed: a new seed reuses the cached plan and gets
/// the CPU reference's losses for the new seed (not the old one's); going back to a seed repeats its losses; other
/// counts compile a new plan.
#[test]
fn a_new_sampling_seed_reuses_the_plan_and_samples_anew() {
    let Some(ctx) = gpu() else { return };
    let wf = small_net(15);
    let hw = [80, 96];
    let img = vgg_support::image(9, hw[1] as u32, hw[0] as u32);
    let random = |batch, seed| Sampling::Random {
        batch,
        fg_fraction: 0.25,
        seed,
    };
    let cfg = StepConfig {
        sampling: random(32, 1),
        normalise: Normalise::Sampled,
        gemm: GemmTier::Auto,
    };
    let mut t = Trainer::new(ctx, &wf, Freeze::Backbone, cfg, Init::seed(0)).unwrap();
    let mut run = |sampling| {
        t.step.sampling = sampling;
        t.accumulate(ctx, img.as_raw(), hw, &faces(), 1.0).unwrap()
    };
    let got = [random(32, 1), random(32, 2), random(32, 1)].map(&mut run);
    assert_eq!(t.steps_compiled(), 1, "one plan serves every seed");
    assert_eq!(got[0], got[2], "seed 1 again: its losses again");

    let x = preprocess(img.as_raw(), &Preprocess::ssh(hw, 1.0).unwrap(), hw);
    let samplings = [random(32, 1), random(32, 2)];
    let want = sampled_losses(&wf, &x, &faces(), &samplings).unwrap();
    let tol = |w: f32| 1e-4 * w.abs().max(1.0);
    for (seed, (g, w)) in [1, 2].iter().zip(got.iter().zip(&want)) {
        for k in 0..3 {
            for (which, g, w) in [("cls", g.cls[k], w[k][0]), ("bbox", g.bbox[k], w[k][1])] {
                let m = k + 1;
                assert!(
                    (g - w).abs() <= tol(w),
                    "seed {seed}, m{m}.{which}: GPU {g}, CPU {w}"
                );
            }
        }
    }
    // Only if the seeds' reference losses differ beyond the tolerance does matching each prove the seed was used.
    let apart = (0..3).any(|k| (want[0][k][0] - want[1][k][0]).abs() > 10.0 * tol(want[0][k][0]));
    assert!(apart, "seeds 1 and 2 sample alike: {want:?}");

    t.step.sampling = random(16, 1);
    t.accumulate(ctx, img.as_raw(), hw, &faces(), 1.0).unwrap();
    assert_eq!(t.steps_compiled(), 2, "another batch is another plan");
}
