// Suppression bitmask of the candidates (py-faster-rcnn's GPU NMS): bit j of word w of row i is set when j > i and
// IoU(i, j) > iou_threshold. Candidate c is the row named by sorted record c; only the first min(count, cap) exist.
// The decision is bit-exact with float32 CPU arithmetic on any Vulkan device: products are kept out of fused
// multiply-adds (`opaque`), and inter / union > t is decided on the integer mantissas, not with a division
// (WGSL's division may be 2.5 ulp off).
override WG: u32 = 256u;
override PLUS_ONE: u32 = 0u; // 1: py-faster-rcnn areas and intersections with +1; 0: TF NonMaxSuppressionV3

struct Params {
    rows: u32,          // R
    len: u32,           // records per image
    cap: u32,           // max_candidates
    words: u32,         // ceil(cap / 32)
    iou_threshold: f32, // finite and >= 0
    zero: u32,          // always 0; the host's value keeps the compiler from seeing through `opaque`
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rows: array<f32>;        // [N, R, 16]
@group(0) @binding(2) var<storage, read> recs: array<vec2<u32>>;  // [N, len]
@group(0) @binding(3) var<storage, read> count: array<u32>;       // [N]
@group(0) @binding(4) var<storage, read_write> mask: array<u32>;  // [N, cap, words]

// Vulkan may fuse a product into a following add (different rounding); an integer op in between prevents it.
fn opaque(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ p.zero);
}

// fl(inter / union) > t for inter >= 0 and t >= 0, as IEEE float32 division and comparison would decide it.
fn above(inter: f32, uni: f32) -> bool {
    let t = p.iou_threshold;
    let ib = bitcast<u32>(inter);
    let ub = bitcast<u32>(uni);
    let tb = bitcast<u32>(t);
    if ((ub & 0x7fffffffu) == 0u) {
        return (ib & 0x7fffffffu) != 0u; // x / 0 = +inf > t; 0 / 0 = NaN
    }
    if ((ub >> 31u) != 0u || (ib & 0x7fffffffu) == 0u) {
        return false; // a quotient <= 0 never exceeds t >= 0
    }
    let ea = (ib >> 23u) & 0xffu;
    let eu = (ub >> 23u) & 0xffu;
    let et = (tb >> 23u) & 0xffu;
    if (ea == 0u || ea == 255u || eu == 0u || eu == 255u || et == 0u || et == 255u) {
        return inter / uni > t; // subnormal, zero or non-finite operands: degenerate boxes only
    }
    // Round to nearest even: fl(a / u) > t  <=>  a / u > m, m = t + ulp(t)/2, or a / u == m and t's mantissa is odd.
    // With a = ma·2^xa, u = mu·2^xu, m = (2mt + 1)·2^(xt − 1):  ma·2^s  vs  (2mt + 1)·mu,  s = xa − xu − xt + 1.
    let ma = (ib & 0x7fffffu) | 0x800000u;
    let mu = (ub & 0x7fffffu) | 0x800000u;
    let mt = (tb & 0x7fffffu) | 0x800000u;
    let s = i32(ea) - i32(eu) - i32(et) + 151;
    // The right side lies in [2^47, 2^49); ma·2^s in [2^(23+s), 2^(24+s)).
    if (s >= 26) {
        return true;
    }
    if (s <= 23) {
        return false;
    }
    let v = 2u * mt + 1u;
    let v0 = v & 0xffffu;
    let v1 = v >> 16u;
    let m0 = mu & 0xffffu;
    let m1 = mu >> 16u;
    let low = v0 * m0;
    let mid = v1 * m0 + v0 * m1;
    let lo = low + ((mid & 0xffffu) << 16u);
    let hi = v1 * m1 + (mid >> 16u) + select(0u, 1u, lo < low);
    let xlo = ma << u32(s);
    let xhi = ma >> u32(32 - s);
    if (xhi != hi) {
        return xhi > hi;
    }
    if (xlo != lo) {
        return xlo > lo;
    }
    return (mt & 1u) == 1u;
}

fn suppresses(a: vec4<f32>, b: vec4<f32>) -> bool {
    if (PLUS_ONE == 1u) {
        let w = max(min(a.z, b.z) - max(a.x, b.x) + 1.0, 0.0);
        let h = max(min(a.w, b.w) - max(a.y, b.y) + 1.0, 0.0);
        let inter = opaque(w * h);
        let sa = opaque((a.z - a.x + 1.0) * (a.w - a.y + 1.0));
        let sb = opaque((b.z - b.x + 1.0) * (b.w - b.y + 1.0));
        return above(inter, sa + sb - inter);
    }
    let na = vec4<f32>(min(a.x, a.z), min(a.y, a.w), max(a.x, a.z), max(a.y, a.w));
    let nb = vec4<f32>(min(b.x, b.z), min(b.y, b.w), max(b.x, b.z), max(b.y, b.w));
    let area_a = opaque((na.z - na.x) * (na.w - na.y));
    let area_b = opaque((nb.z - nb.x) * (nb.w - nb.y));
    if (area_a <= 0.0 || area_b <= 0.0) {
        return false; // TF's IoU is 0 here, never above t >= 0
    }
    let iw = max(min(na.z, nb.z) - max(na.x, nb.x), 0.0);
    let ih = max(min(na.w, nb.w) - max(na.y, nb.y), 0.0);
    let inter = opaque(iw * ih);
    return above(inter, area_a + area_b - inter);
}

fn box_of(n: u32, c: u32) -> vec4<f32> {
    let row = recs[n * p.len + c].x & 0x07ffffffu;
    let at = (n * p.rows + row) * 16u;
    return vec4<f32>(rows[at], rows[at + 1u], rows[at + 2u], rows[at + 3u]);
}

@compute @workgroup_size(WG)
fn nms_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    if (t >= p.cap * p.words) {
        return;
    }
    let n = gid.z;
    let i = t / p.words;
    let w = t % p.words;
    let c = min(count[n], p.cap);
    var bits = 0u;
    // Words left of the diagonal and rows past the count stay 0; the sweep never needs them.
    if (i < c && 32u * w + 31u > i) {
        let bi = box_of(n, i);
        let end = min(32u, c - min(c, 32u * w));
        for (var k = 0u; k < end; k++) {
            let j = 32u * w + k;
            if (j > i && suppresses(bi, box_of(n, j))) {
                bits |= 1u << k;
            }
        }
    }
    mask[n * p.cap * p.words + t] = bits;
}
