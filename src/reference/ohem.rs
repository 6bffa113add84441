//! Reference of `shaders/ohem.wgsl`: anchor sampling by plain sorting (the rules are in [`crate::ops::ohem`]).

use std::cmp::Ordering;

use crate::ops::ohem::{Normalise, Sampling};

/// What [`sample_anchors`] returns; the GPU op's tensors as vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuSampled {
    /// `[A, H, W]`: 1 or 0 for sampled anchors, −1 elsewhere.
    pub labels: Vec<f32>,
    /// `[4A, H, W]`: the normaliser on the four channels of every sampled anchor, 0 elsewhere.
    pub outside_weights: Vec<f32>,
    /// Positives kept, negatives kept, positives available, negatives available.
    pub stats: [u32; 4],
}

/// PCG hash (Jarzynski & Olano 2020), as the shader computes it with wrapping u32 arithmetic.
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The key of anchor `index` under [`Sampling::Random`] with `seed`: the smallest keys are kept.
pub fn random_key(seed: u32, index: u32) -> u32 {
    pcg(index.wrapping_add(pcg(seed)))
}

/// Ascending probabilities with NaN after every number (−0 equals +0).
fn by_prob(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).expect("numbers compare"),
    }
}

/// Anchor sampling of one module: `labels` and `face_prob` `[A, H, W]` (`dims`), as
/// [`crate::ops::ohem::sample_anchors`] on the GPU. Panics on an invalid `sampling` (see [`Sampling::caps`]).
pub fn sample_anchors(
    labels: &[f32],
    face_prob: &[f32],
    dims: [usize; 3],
    sampling: Sampling,
    norm: Normalise,
) -> CpuSampled {
    let [a, h, w] = dims;
    let hw = h * w;
    assert_eq!(labels.len(), a * hw, "labels [A, H, W]");
    assert_eq!(face_prob.len(), a * hw, "face probabilities [A, H, W]");
    let [num_fg, batch] = sampling.caps().expect("valid sampling");
    let class = |v: f32| labels.iter().enumerate().filter(move |l| *l.1 == v);
    let mut pos: Vec<usize> = class(1.0).map(|l| l.0).collect();
    let mut neg: Vec<usize> = class(0.0).map(|l| l.0).collect();
    let (avail_pos, avail_neg) = (pos.len() as u32, neg.len() as u32);
    // Stable sorts of index-ordered lists: equal keys stay in index order.
    match sampling {
        Sampling::All => {}
        Sampling::Ohem { .. } => {
            pos.sort_by(|&i, &j| by_prob(face_prob[i], face_prob[j]));
            // Descending probability, NaN still last.
            neg.sort_by(
                |&i, &j| match (face_prob[i].is_nan(), face_prob[j].is_nan()) {
                    (false, false) => by_prob(face_prob[j], face_prob[i]),
                    _ => by_prob(face_prob[i], face_prob[j]),
                },
            );
        }
        Sampling::Random { seed, .. } => {
            for list in [&mut pos, &mut neg] {
                list.sort_by_key(|&i| random_key(seed, i as u32));
            }
        }
    }
    pos.truncate(num_fg as usize);
    neg.truncate(batch.saturating_sub(pos.len() as u32) as usize);
    let stats = [pos.len() as u32, neg.len() as u32, avail_pos, avail_neg];
    let n = match norm {
        Normalise::Sampled => pos.len() + neg.len(),
        Normalise::Positives => pos.len(),
    };
    let weight = if n == 0 { 0.0 } else { 1.0 / n as f32 };
    let mut out = CpuSampled {
        labels: vec![-1.0; a * hw],
        outside_weights: vec![0.0; 4 * a * hw],
        stats,
    };
    for (list, value) in [(&pos, 1.0), (&neg, 0.0)] {
        for &i in list {
            out.labels[i] = value;
            let (anchor, cell) = (i / hw, i % hw);
            for j in 0..4 {
                out.outside_weights[(4 * anchor + j) * hw + cell] = weight;
            }
        }
    }
    out
}
