// Smooth L1 loss with inside and outside weights (Fast R-CNN's SmoothL1LossLayer, which SSH trains with):
// d = w_in·(pred − target); f(d) = 0.5·σ²·d² when |d| < 1/σ², else |d| − 0.5/σ²;
//   smooth_l1       one workgroup: loss = Σ |w_out·f(d)| / num (num = the batch size N, as Caffe; SSH puts
//                   its 1/num_sampled normaliser into w_out). Sums in a fixed order: deterministic.
//   smooth_l1_grad  d pred = f'(d)·w_in·w_out / num, f'(d) = σ²·d when |d| < 1/σ², else sign(d).
struct Params {
    len: u32,
    num: u32,
    sigma2: f32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;       // [N, 4A, H, W]
@group(0) @binding(2) var<storage, read> tgt: array<f32>;        // [N, 4A, H, W]
@group(0) @binding(3) var<storage, read> w_in: array<f32>;       // [N, 4A, H, W]
@group(0) @binding(4) var<storage, read> w_out: array<f32>;      // [N, 4A, H, W]
// smooth_l1
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;  // [1]
// smooth_l1_grad
@group(0) @binding(5) var<storage, read_write> dpred: array<f32>; // [N, 4A, H, W]

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn smooth_l1(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < p.len; i += 256u) {
        let d = w_in[i] * (pred[i] - tgt[i]);
        let a = abs(d);
        let f = select(a - 0.5 / p.sigma2, 0.5 * p.sigma2 * d * d, a < 1.0 / p.sigma2);
        acc += abs(w_out[i] * f);
    }
    red[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        loss[0] = red[0] / f32(p.num);
    }
}

@compute @workgroup_size(256)
fn smooth_l1_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.len) {
        return;
    }
    let d = w_in[i] * (pred[i] - tgt[i]);
    let f = select(sign(d), p.sigma2 * d, abs(d) < 1.0 / p.sigma2);
    dpred[i] = f * w_in[i] * w_out[i] / f32(p.num);
}
