//! Reference of `shaders/softmax2.wgsl`, in f64 (the accuracy target), rounded to f32 at the end.

use crate::ops::softmax2::ClassLayout;
use crate::reference::CpuTensor;

/// Logits `[N, 2A, H, W]` -> face probability `[N, A, H, W]`; NaN where a logit is not finite.
pub fn softmax2(logits: &CpuTensor, layout: ClassLayout) -> CpuTensor {
    let [n, c2, h, w] = logits.nchw();
    assert!(c2 % 2 == 0, "softmax2: odd channel count {c2}");
    let a = c2 / 2;
    let mut out = CpuTensor::zeros(&[n, a, h, w]);
    let mut i = 0;
    for b in 0..n {
        for anchor in 0..a {
            let [c0, c1] = layout.channels(anchor, a);
            for y in 0..h {
                for x in 0..w {
                    let l0 = logits.at(b, c0, y, x) as f64;
                    let l1 = logits.at(b, c1, y, x) as f64;
                    if !(l0.is_finite() && l1.is_finite()) {
                        // An overflowed head: NaN, which selection ranks below every score.
                        out.data[i] = f32::NAN;
                        i += 1;
                        continue;
                    }
                    let m = l0.max(l1);
                    let (e0, e1) = ((l0 - m).exp(), (l1 - m).exp());
                    out.data[i] = (e1 / (e0 + e1)) as f32;
                    i += 1;
                }
            }
        }
    }
    out
}
