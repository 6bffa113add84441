// SGD with momentum, weight decay and per-parameter multipliers, Caffe's update in the sign convention
// v = m·v − lr·lr_mult·(scale·g + decay·decay_mult·w); w += v  (Caffe's history is −v).
// hyper = [lr, momentum, weight decay, gradient scale] is a tensor the host writes each iteration (the lr
// schedule; scale = 1/iter_size), the multipliers are fixed per parameter. With CLEAR_GRAD the gradient is
// zeroed after use, ready for the next accumulation.
override WG: u32 = 256u;
override CLEAR_GRAD: bool = false;

struct Params {
    len: u32,
    lr_mult: f32,
    decay_mult: f32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> hyper: array<f32>;        // [4]
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;   // [len]
@group(0) @binding(3) var<storage, read_write> v: array<f32>;      // [len] momentum history
@group(0) @binding(4) var<storage, read_write> w: array<f32>;      // [len] parameter

@compute @workgroup_size(WG)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    let wi = w[i];
    let g = hyper[3] * grad[i] + hyper[2] * p.decay_mult * wi;
    let vi = hyper[1] * v[i] - hyper[0] * p.lr_mult * g;
    v[i] = vi;
    w[i] = wi + vi;
    if (CLEAR_GRAD) {
        grad[i] = 0.0;
    }
}
