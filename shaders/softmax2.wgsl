// Two-class softmax per anchor, returning the face probability p[cls = 1]. The larger logit is subtracted
// first so exp never overflows: one of the two exponentials is exactly 1 and the other lies in (0, 1].
// A logit that is not finite (an overflowed head) gives NaN, which selection ranks below every score: the anchor is
// dropped. Tested on the bits: WGSL lets compilers assume that NaN and infinity never occur.
override WG: u32 = 256u;
override LAYOUT: u32 = 0u; // 0 class-major (SSH: channel cls·A + a), 1 interleaved (RetinaFace: channel a·2 + cls)

// Element type of the feature maps this shader reads or writes; build.rs generates the f16 variant
// (<name>_f16.wgsl) in which Map is f16. Arithmetic is f32 in both.
alias Map = f32;

struct Params {
    len: u32, // N·A·H·W
    a: u32,   // anchors per position
    hw: u32,  // H·W
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<Map>;    // [N, 2A, H, W]
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [N, A, H, W]

fn finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(WG)
fn softmax2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    let s = i % p.hw;
    let anchor = (i / p.hw) % p.a;
    let base = (i / (p.hw * p.a)) * 2u * p.a * p.hw + s;
    var c0 = anchor;
    var c1 = p.a + anchor;
    if (LAYOUT == 1u) {
        c0 = 2u * anchor;
        c1 = 2u * anchor + 1u;
    }
    let l0 = f32(logits[base + c0 * p.hw]);
    let l1 = f32(logits[base + c1 * p.hw]);
    let m = max(l0, l1);
    let e0 = exp(l0 - m);
    let e1 = exp(l1 - m);
    let bad = !finite(l0) || !finite(l1);
    out[i] = bitcast<f32>(select(bitcast<u32>(e1 / (e0 + e1)), 0x7fc00000u, bad));
}
