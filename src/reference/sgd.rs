//! Reference of `shaders/sgd.wgsl`: one SGD step in f32 (Caffe's `SGDSolver`, history stored as −v).

use crate::ops::sgd::Multipliers;

/// `[lr, momentum, weight_decay, grad_scale]` as the shader's hyper tensor.
pub fn sgd(w: &mut [f32], v: &mut [f32], grad: &[f32], hyper: [f32; 4], mult: Multipliers) {
    let [lr, momentum, decay, scale] = hyper;
    assert!(v.len() == w.len() && grad.len() == w.len(), "sgd: lengths");
    for i in 0..w.len() {
        let g = scale * grad[i] + decay * mult.decay * w[i];
        v[i] = momentum * v[i] - lr * mult.lr * g;
        w[i] += v[i];
    }
}
