//! Reference of `shaders/softmax_loss.wgsl` (Caffe's SoftmaxWithLoss with `ignore_label: -1` and VALID
//! normalization), in f64.

use crate::ops::softmax2::ClassLayout;
use crate::reference::CpuTensor;

/// Loss `Σ −log max(p[label], FLT_MIN) / max(1, count)` over the anchors whose label is not −1, that
/// count, and the logits gradient `(p − onehot) / max(1, count)` (0 for ignored anchors), for logits
/// `[N, 2A, H, W]` and labels `[N, A, H, W]` (−1, 0 or 1; anything else gives NaN as the shader does).
pub fn softmax_loss(
    logits: &CpuTensor,
    labels: &[f32],
    layout: ClassLayout,
) -> (f64, usize, CpuTensor) {
    let [n, c2, h, w] = logits.nchw();
    let a = c2 / 2;
    assert_eq!(labels.len(), n * a * h * w, "one label per anchor");
    let hw = h * w;
    let idx = |b: usize, c: usize, s: usize| (b * c2 + c) * hw + s;
    let mut per = Vec::new(); // (i0, i1, p0, p1, label)
    for b in 0..n {
        for anchor in 0..a {
            let [c0, c1] = layout.channels(anchor, a);
            for s in 0..hw {
                let (i0, i1) = (idx(b, c0, s), idx(b, c1, s));
                let (l0, l1) = (logits.data[i0] as f64, logits.data[i1] as f64);
                let m = l0.max(l1);
                let (e0, e1) = ((l0 - m).exp(), (l1 - m).exp());
                let label = labels[(b * a + anchor) * hw + s];
                per.push((i0, i1, e0 / (e0 + e1), e1 / (e0 + e1), label));
            }
        }
    }
    let count = per.iter().filter(|p| p.4 == 0.0 || p.4 == 1.0).count();
    let bad = per.iter().any(|p| !matches!(p.4, -1.0 | 0.0 | 1.0));
    let norm = (count as f64).max(1.0);
    let mut loss = 0.0;
    let mut grad = CpuTensor::zeros(&logits.shape);
    for &(i0, i1, p0, p1, label) in &per {
        let (g0, g1) = match label {
            -1.0 => (0.0, 0.0),
            0.0 => {
                loss -= p0.max(f32::MIN_POSITIVE as f64).ln();
                (p0 - 1.0, p1)
            }
            1.0 => {
                loss -= p1.max(f32::MIN_POSITIVE as f64).ln();
                (p0, p1 - 1.0)
            }
            _ => (f64::NAN, f64::NAN),
        };
        grad.data[i0] = (g0 / norm) as f32;
        grad.data[i1] = (g1 / norm) as f32;
    }
    let loss = if bad { f64::NAN } else { loss / norm };
    (loss, count, grad)
}
