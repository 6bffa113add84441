//! The sampling cases' helpers of `train_ohem.rs`: the GPU op compiled once and read back as the reference's struct,
//! the GPU-vs-reference check, and label builders.

use std::ops::Range;

use crate::common::*;
use sshface::gpu::plan::{bytes_to_f32, bytes_to_u32};
use sshface::gpu::{Graph, Plan, TensorId};
use sshface::ops::ohem::{sample_anchors as gpu_sample, Normalise, Sampling};
use sshface::reference::ohem::{sample_anchors, CpuSampled};

pub fn ohem(batch: u32, fg_fraction: f32) -> Sampling {
    Sampling::Ohem { batch, fg_fraction }
}

pub fn random(seed: u32, fg_fraction: f32) -> Sampling {
    let batch = 256;
    Sampling::Random {
        batch,
        fg_fraction,
        seed,
    }
}

/// `len` labels: 1 on `pos`, 0 on `neg`, −1 elsewhere.
pub fn segments(len: usize, pos: Range<usize>, neg: Range<usize>) -> Vec<f32> {
    let label = |i| [-1.0, 1.0, 0.0][pos.contains(&i) as usize + 2 * neg.contains(&i) as usize];
    (0..len).map(label).collect()
}

/// The GPU op compiled once for `[1, A, H, W]` inputs; every run writes labels, probabilities and the seed.
pub struct GpuSampler {
    ctx: &'static sshface::GpuContext,
    plan: Plan,
    inputs: [TensorId; 3],
    outputs: [TensorId; 3],
}

impl GpuSampler {
    /// None without a GPU.
    pub fn new([a, h, w]: [usize; 3], s: Sampling, n: Normalise) -> Option<Self> {
        let ctx = gpu()?;
        let mut g = Graph::new();
        let l = g.input("labels", &[1, a, h, w]).unwrap();
        let p = g.input("face_prob", &[1, a, h, w]).unwrap();
        let seed = g.input("seed", &[1]).unwrap();
        let out = gpu_sample(&mut g, "m_ohem", l, p, seed, s, n).unwrap();
        let outputs = [out.labels, out.outside_weights, out.stats];
        outputs.iter().for_each(|&t| g.mark_output(t));
        let plan = g.compile(ctx).unwrap();
        let inputs = [l, p, seed];
        Some(GpuSampler {
            ctx,
            plan,
            inputs,
            outputs,
        })
    }

    /// The op's tensors read back as the reference's struct.
    pub fn run(&self, labels: &[f32], prob: &[f32], seed: u32) -> CpuSampled {
        let ([l, p, s], ctx) = (self.inputs, self.ctx);
        self.plan.write(ctx, l, labels).unwrap();
        self.plan.write(ctx, p, prob).unwrap();
        self.plan.write(ctx, s, &[seed]).unwrap();
        let b = self.plan.run(ctx, &self.outputs).unwrap();
        CpuSampled {
            labels: bytes_to_f32(&b[0]),
            outside_weights: bytes_to_f32(&b[1]),
            stats: bytes_to_u32(&b[2]).try_into().unwrap(),
        }
    }
}

/// Checks the GPU's `got` against the reference's `want` (the weights within the rounding of one division).
pub fn check(case: &str, got: &CpuSampled, want: &CpuSampled) {
    assert_eq!(got.stats, want.stats, "{case}: GPU stats");
    let tag = |what: &str| format!("{case}: GPU {what}");
    assert_close(&tag("labels"), &got.labels, &want.labels, 0.0, 0.0);
    let w = (&got.outside_weights, &want.outside_weights);
    assert_close(&tag("outside weights"), w.0, w.1, 0.0, 1e-6);
}

/// The reference's result, after checking that the GPU (when there is one) gives the same.
pub fn both(
    case: &str,
    labels: &[f32],
    prob: &[f32],
    dims: [usize; 3],
    s: Sampling,
    n: Normalise,
) -> CpuSampled {
    let want = sample_anchors(labels, prob, dims, s, n);
    if let Some(gpu) = GpuSampler::new(dims, s, n) {
        check(case, &gpu.run(labels, prob, s.seed()), &want);
    }
    want
}

/// Labels expected from the kept positive and negative indices; checks them and the weights (`weight` on the four
/// channels of each kept anchor).
pub fn expect(case: &str, got: &CpuSampled, dims: [usize; 3], kept: [&[usize]; 2], weight: f32) {
    let hw = dims[1] * dims[2];
    let mut labels = vec![-1.0; dims[0] * hw];
    let mut w = vec![0.0; 4 * dims[0] * hw];
    for (list, v) in kept.iter().zip([1.0, 0.0]) {
        for &i in *list {
            labels[i] = v;
            for j in 0..4 {
                w[(4 * (i / hw) + j) * hw + i % hw] = weight;
            }
        }
    }
    assert_close(&format!("{case}: labels"), &got.labels, &labels, 0.0, 0.0);
    let what = format!("{case}: outside weights");
    assert_close(&what, &got.outside_weights, &w, 0.0, 0.0);
}
