//! Anchor sampling of SSH training (OHEM, all, random): the CPU reference (src/reference/ohem.rs) on hand-built
//! cases whose answer is known, and `shaders/ohem.wgsl` against it (exactly; the weights within the rounding of
//! one division) on every case and on seeded random maps.

mod common;
#[path = "ohem_support/mod.rs"]
mod ohem_support;

use common::*;
use ohem_support::*;
use rand::Rng;
use sshface::gpu::{DType, Graph};
use sshface::ops::ohem::{sample_anchors as gpu_sample, Normalise, Sampling};
use sshface::reference::ohem::{random_key, sample_anchors};

const SSH: Sampling = Sampling::SSH;

#[test]
fn ohem_keeps_the_lowest_probability_positives() {
    // 100 positives at 0..100 with probability (100 − i)/128, 50 negatives, 50 ignored.
    let dims = [2, 10, 10];
    let labels = segments(200, 0..100, 100..150);
    let prob: Vec<f32> = (0..200)
        .map(|i| (100 - i.min(100)) as f32 / 128.0)
        .collect();
    let pos: Vec<usize> = (36..100).collect();
    let neg: Vec<usize> = (100..150).collect();
    for (norm, w) in [
        (Normalise::Sampled, 1.0 / 114.0),
        (Normalise::Positives, 1.0 / 64.0),
    ] {
        let got = both("hard positives", &labels, &prob, dims, SSH, norm);
        assert_eq!(got.stats, [64, 50, 100, 50]);
        expect(&format!("{norm:?}"), &got, dims, [&pos, &neg], w);
    }
}

#[test]
fn ohem_keeps_the_highest_probability_negatives() {
    // 10 positives, 300 negatives whose probabilities are a permutation of k/512 (k = 7·j mod 300), 50 ignored:
    // 256 − 10 = 246 negatives fit, so the 54 with k < 54 go.
    let dims = [2, 12, 15];
    let labels = segments(360, 0..10, 10..310);
    let k = |i: usize| (7 * (i - 10)) % 300;
    let prob: Vec<f32> = (0..360)
        .map(|i| {
            if (10..310).contains(&i) {
                k(i) as f32 / 512.0
            } else {
                0.9
            }
        })
        .collect();
    let got = both(
        "hard negatives",
        &labels,
        &prob,
        dims,
        SSH,
        Normalise::Sampled,
    );
    assert_eq!(got.stats, [10, 246, 10, 300]);
    let pos: Vec<usize> = (0..10).collect();
    let neg: Vec<usize> = (10..310).filter(|&i| k(i) >= 54).collect();
    expect("hard negatives", &got, dims, [&pos, &neg], 1.0 / 256.0);
}

#[test]
fn ties_go_to_the_lower_index_and_nan_ranks_last() {
    // Positives: the 100 even indices below 200, probability 0.25 except 150 (+0), 198 (−0, equal to +0) and
    // 4 (NaN). Negatives: the other 284 anchors, 0.5 except 383 (0.75) and 1 (NaN).
    let dims = [2, 12, 16];
    let labels: Vec<f32> = (0..384)
        .map(|i| if i % 2 == 0 && i < 200 { 1.0 } else { 0.0 })
        .collect();
    let mut prob: Vec<f32> = labels
        .iter()
        .map(|&l| if l == 1.0 { 0.25 } else { 0.5 })
        .collect();
    prob[150] = 0.0;
    prob[198] = -0.0;
    prob[4] = f32::NAN;
    prob[383] = 0.75;
    prob[1] = f32::NAN;
    let got = both("ties", &labels, &prob, dims, SSH, Normalise::Sampled);
    assert_eq!(got.stats, [64, 192, 100, 284]);
    let mut pos = vec![150, 198];
    pos.extend(
        (0..200)
            .step_by(2)
            .filter(|i| ![4, 150, 198].contains(i))
            .take(62),
    );
    let mut neg = vec![383];
    neg.extend((0..383).filter(|&i| labels[i] == 0.0 && i != 1).take(191));
    expect("ties", &got, dims, [&pos, &neg], 1.0 / 256.0);
    // With room for every anchor the NaN ones are kept too.
    let all = ohem(1000, 0.5);
    let got = both("ties, room", &labels, &prob, dims, all, Normalise::Sampled);
    assert_eq!(got.stats, [100, 284, 100, 284]);
    assert_eq!(got.labels, labels);
}

#[test]
fn nothing_labelled_gives_zero_weights() {
    let dims = [2, 7, 9];
    // All ignored, and labels that are neither 0 nor 1 (ignored too).
    let odd = [-1.0, 0.5, 2.0, -0.5, f32::NAN];
    let labels: Vec<f32> = (0..126).map(|i| odd[i % odd.len()]).collect();
    let prob = rand_vec(3, 126, 0.0, 1.0);
    let random = random(5, 0.25);
    for s in [SSH, Sampling::All, random] {
        for n in [Normalise::Sampled, Normalise::Positives] {
            let got = both(&format!("{s:?} {n:?}"), &labels, &prob, dims, s, n);
            assert_eq!(got.stats, [0; 4]);
            expect(&format!("{s:?} {n:?}"), &got, dims, [&[], &[]], 0.0);
        }
    }
}

#[test]
fn no_positives_or_no_room() {
    let dims = [2, 7, 9];
    let prob = rand_vec(4, 126, 0.0, 1.0);
    // 100 negatives, no positive: the positives' normaliser has nothing to count.
    let labels: Vec<f32> = (0..126).map(|i| if i < 100 { 0.0 } else { -1.0 }).collect();
    let neg: Vec<usize> = (0..100).collect();
    let got = both("no +", &labels, &prob, dims, SSH, Normalise::Sampled);
    assert_eq!(got.stats, [0, 100, 0, 100]);
    expect("no +, sampled", &got, dims, [&[], &neg], 0.01);
    let got = both("no +", &labels, &prob, dims, SSH, Normalise::Positives);
    expect("no +, positives", &got, dims, [&[], &neg], 0.0);
    // 10 positives and 20 negatives: fg_fraction 0 keeps no positive; a batch of 8 at fg_fraction 1 keeps
    // the 8 hardest positives and no negative.
    let labels = segments(126, 0..10, 10..30);
    let prob: Vec<f32> = (0..126).map(|i| i as f32 / 128.0).collect();
    let s = ohem(256, 0.0);
    let got = both("fg 0", &labels, &prob, dims, s, Normalise::Sampled);
    assert_eq!(got.stats, [0, 20, 10, 20]);
    let neg: Vec<usize> = (10..30).collect();
    expect("fg 0", &got, dims, [&[], &neg], 0.05);
    let s = ohem(8, 1.0);
    let got = both("batch 8", &labels, &prob, dims, s, Normalise::Positives);
    assert_eq!(got.stats, [8, 0, 10, 20]);
    let pos: Vec<usize> = (0..8).collect();
    expect("batch 8", &got, dims, [&pos, &[]], 0.125);
}

/// Probabilities from rand are multiples of 2^−24: this many levels leaves them as they are.
const ALL_LEVELS: u32 = 1 << 24;

/// Labels [A, H, W] with the given fractions of positives and negatives (the rest ignored) and probabilities
/// rounded down to multiples of 1/`levels` (few levels: many ties).
fn random_case(seed: u64, dims: [usize; 3], pos: f64, neg: f64, levels: u32) -> [Vec<f32>; 2] {
    let mut r = rng(seed);
    let len = dims.iter().product();
    let labels = (0..len)
        .map(|_| {
            let u: f64 = r.random();
            [1.0, 0.0, -1.0][(u >= pos) as usize + (u >= pos + neg) as usize]
        })
        .collect();
    let prob = (0..len)
        .map(|_| (r.random::<f32>() * levels as f32).floor() / levels as f32)
        .collect();
    [labels, prob]
}

#[test]
fn all_keeps_every_labelled_anchor() {
    let dims = [2, 30, 41];
    let [labels, prob] = random_case(7, dims, 0.05, 0.6, ALL_LEVELS);
    let all = |n| both("all", &labels, &prob, dims, Sampling::All, n);
    let got = all(Normalise::Sampled);
    let count = |v: f32| labels.iter().filter(|&&l| l == v).count() as u32;
    let (p, n) = (count(1.0), count(0.0));
    assert_eq!(got.stats, [p, n, p, n]);
    assert_eq!(got.labels, labels);
    let w = 1.0 / (p + n) as f32;
    assert!(got.outside_weights.iter().all(|&v| v == 0.0 || v == w));
    let got = all(Normalise::Positives);
    assert!(got
        .outside_weights
        .iter()
        .all(|&v| v == 0.0 || v == 1.0 / p as f32));
}

#[test]
fn gpu_matches_reference_on_random_maps() {
    let small = ohem(32, 0.25);
    // (map, positives, negatives, probability levels, sampling)
    let cases = [
        ([7, 9], 0.2, 0.5, ALL_LEVELS, small),
        ([7, 9], 0.3, 0.6, 8, small),
        ([60, 80], 0.02, 0.7, 32, SSH),
        ([60, 80], 0.003, 0.9, ALL_LEVELS, SSH),
        ([150, 200], 0.005, 0.8, ALL_LEVELS, SSH),
        ([150, 200], 0.01, 0.8, 256, SSH),
    ];
    for (i, (hw, pos, neg, levels, s)) in cases.into_iter().enumerate() {
        let dims = [2, hw[0], hw[1]];
        let [labels, prob] = random_case(20 + i as u64, dims, pos, neg, levels);
        for n in [Normalise::Sampled, Normalise::Positives] {
            let case = format!("case {i}: {hw:?} {n:?}");
            let got = both(&case, &labels, &prob, dims, s, n);
            let [num_fg, batch] = s.caps().unwrap();
            let [kp, kn, ap, an] = got.stats;
            assert_eq!(kp, ap.min(num_fg), "{case}");
            assert_eq!(kn, an.min(batch - kp), "{case}");
        }
    }
}

/// Random sampling keeps the smallest `random_key`s whatever the probabilities, and the GPU reads the seed when
/// the plan runs: ONE plan (compiled with a seed it must not use) gives every seed written to it, in any order,
/// that seed's reference sampling, and different seeds choose differently.
#[test]
fn random_sampling_is_seeded_and_read_at_run_time() {
    let dims = [2, 40, 50];
    let [labels, prob] = random_case(9, dims, 0.075, 0.75, ALL_LEVELS);
    let flipped: Vec<f32> = prob.iter().map(|p| 1.0 - p).collect();
    let ap = labels.iter().filter(|&&l| l == 1.0).count() as u32;
    let an = labels.iter().filter(|&&l| l == 0.0).count() as u32;
    assert!(ap > 64 && an > 192, "{ap} positives, {an} negatives");
    let n = Normalise::Sampled;
    let sampler = GpuSampler::new(dims, random(99, 0.25), n);
    let seeds = [1, 2, 0xdead_beef, 0, 1];
    let mut kept = Vec::new();
    for seed in seeds {
        let cpu = |p: &[f32]| sample_anchors(&labels, p, dims, random(seed, 0.25), n);
        let (got, case) = (cpu(&prob), format!("seed {seed:#x}"));
        for p in [&prob, &flipped] {
            assert_eq!(cpu(p), got, "{case}");
            if let Some(gpu) = &sampler {
                check(&case, &gpu.run(&labels, p, seed), &got);
            }
        }
        assert_eq!(got.stats, [64, 192, ap, an]);
        // The kept positives are the 64 smallest keys.
        let mut keys: Vec<u32> = (0..labels.len())
            .filter(|&i| labels[i] == 1.0)
            .map(|i| random_key(seed, i as u32))
            .collect();
        keys.sort();
        for (i, &l) in got.labels.iter().enumerate() {
            if labels[i] == 1.0 {
                assert_eq!(
                    l == 1.0,
                    random_key(seed, i as u32) <= keys[63],
                    "anchor {i}"
                );
            }
        }
        // Both halves of the map contribute.
        let first_half = got.labels[..2000].iter().filter(|&&l| l >= 0.0).count();
        assert!(
            (64..192).contains(&first_half),
            "{first_half} of 256 in the first half"
        );
        kept.push(got.labels);
    }
    for i in 1..4 {
        for j in 0..i {
            let (a, b) = (seeds[i], seeds[j]);
            assert_ne!(kept[i], kept[j], "seeds {a:#x} and {b:#x} sample alike");
        }
    }
}

#[test]
fn shapes_and_settings_are_checked() {
    let mut g = Graph::new();
    let l4 = g.input("m1_labels", &[1, 2, 10, 10]).unwrap();
    let l3 = g.input("m1_labels3", &[2, 10, 10]).unwrap();
    let p4 = g.input("m1_prob", &[1, 2, 10, 10]).unwrap();
    let wide = g.input("m1_prob_wide", &[1, 2, 10, 11]).unwrap();
    let two = g.input("two_images", &[2, 2, 10, 10]).unwrap();
    let half = g
        .input_as("m1_prob_f16", &[1, 2, 10, 10], DType::F16)
        .unwrap();
    let seed = g.input("m1_seed", &[1]).unwrap();
    let out = gpu_sample(&mut g, "ok4", l4, p4, seed, SSH, Normalise::Sampled).unwrap();
    assert_eq!(g.shape(out.labels), [1, 2, 10, 10]);
    assert_eq!(g.shape(out.outside_weights), [1, 8, 10, 10]);
    assert_eq!(g.shape(out.stats), [4]);
    let out = gpu_sample(&mut g, "ok3", l3, p4, seed, SSH, Normalise::Sampled).unwrap();
    assert_eq!(g.shape(out.labels), [2, 10, 10]);
    assert_eq!(g.shape(out.outside_weights), [8, 10, 10]);
    let seeds = g.input("m1_seeds", &[2]).unwrap();
    let err = |g: &mut Graph, l, p, (seed, s)| {
        gpu_sample(g, "m1_ohem", l, p, seed, s, Normalise::Sampled)
            .unwrap_err()
            .to_string()
    };
    let ssh = (seed, SSH);
    for (l, p, s, want) in [
        (
            l4,
            wide,
            ssh,
            "'m1_prob_wide' [1, 2, 10, 11] must be [1, 2, 10, 10]",
        ),
        (
            two,
            p4,
            ssh,
            "labels 'two_images' [2, 2, 10, 10] must be [1, A, H, W]",
        ),
        (l4, p4, (seeds, SSH), "seed 'm1_seeds' [2] F32 must"),
        (l4, half, ssh, "'m1_prob_f16' is F16"),
        (l4, p4, (seed, ohem(0, 0.25)), "batch 0"),
        (l4, p4, (seed, random(1, f32::NAN)), "fg_fraction NaN"),
        (l4, p4, (seed, ohem(256, 1.5)), "fg_fraction 1.5"),
    ] {
        let e = err(&mut g, l, p, s);
        assert!(e.contains("m1_ohem") && e.contains(want), "{e}");
    }
}
