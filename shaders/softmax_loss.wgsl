// Two-class softmax with cross-entropy loss and an ignore label (Caffe's SoftmaxWithLoss, normalization
// VALID), over the classification head's anchors:
//   softmax_loss       one workgroup: stats = [Σ −log max(p[label], FLT_MIN) / max(1, count), count]
//                      over the anchors whose label is not −1 (sums in a fixed order: deterministic)
//   softmax_loss_grad  one invocation per anchor: d logits = (p − onehot(label)) / max(1, count), 0 when
//                      ignored
// Labels are f32 values −1 (ignore), 0 (background) or 1 (face); any other value makes the loss and that
// anchor's gradient NaN, so a bad label is seen instead of silently learned.
override LAYOUT: u32 = 0u; // 0 class-major (SSH: channel cls·A + a), 1 interleaved (RetinaFace: a·2 + cls)

struct Params {
    len: u32, // N·A·H·W
    a: u32,   // anchors per position
    hw: u32,  // H·W
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;         // [N, 2A, H, W]
@group(0) @binding(2) var<storage, read> labels: array<f32>;         // [N, A, H, W]
// softmax_loss
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;    // [2]: loss, count
// softmax_loss_grad
@group(0) @binding(3) var<storage, read> stats_in: array<f32>;       // [2]
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;  // [N, 2A, H, W]

// Offsets of anchor i's (background, face) logits.
fn pair(i: u32) -> vec2<u32> {
    let s = i % p.hw;
    let anchor = (i / p.hw) % p.a;
    let base = (i / (p.hw * p.a)) * 2u * p.a * p.hw + s;
    if (LAYOUT == 1u) {
        return vec2<u32>(base + 2u * anchor * p.hw, base + (2u * anchor + 1u) * p.hw);
    }
    return vec2<u32>(base + anchor * p.hw, base + (p.a + anchor) * p.hw);
}

// (p_background, p_face) of anchor i.
fn probs(o: vec2<u32>) -> vec2<f32> {
    let l = vec2<f32>(logits[o.x], logits[o.y]);
    let e = exp(l - vec2<f32>(max(l.x, l.y)));
    return e / (e.x + e.y);
}

// A quiet NaN made from a runtime value's bits: a constant NaN is a compile error in Tint (WGSL forbids
// non-finite constant expressions), so the exponent and quiet bit are set on `x`.
fn nan_from(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) | 0x7fc00000u);
}

var<workgroup> red: array<vec2<f32>, 256>; // (loss, count) per thread

@compute @workgroup_size(256)
fn softmax_loss(@builtin(local_invocation_index) lid: u32) {
    var acc = vec2<f32>(0.0);
    for (var i = lid; i < p.len; i += 256u) {
        let label = labels[i];
        if (label == -1.0) {
            continue;
        }
        let pr = probs(pair(i));
        if (label == 0.0 || label == 1.0) {
            let pl = select(pr.x, pr.y, label == 1.0);
            // FLT_MIN by its bits, as Caffe clamps the probability.
            acc += vec2<f32>(-log(max(pl, bitcast<f32>(0x00800000u))), 1.0);
        } else {
            acc.x = nan_from(label);
        }
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
        let r = red[0];
        stats[0] = r.x / max(1.0, r.y);
        stats[1] = r.y;
    }
}

@compute @workgroup_size(256)
fn softmax_loss_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.len) {
        return;
    }
    let o = pair(i);
    let label = labels[i];
    var g = vec2<f32>(0.0);
    if (label == 0.0 || label == 1.0) {
        g = (probs(o) - select(vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0), label == 1.0)) / max(1.0, stats_in[1]);
    } else if (label != -1.0) {
        g = vec2<f32>(nan_from(label));
    }
    dlogits[o.x] = g.x;
    dlogits[o.y] = g.y;
}
