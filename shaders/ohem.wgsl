// Anchor sampling of SSH training (py-faster-rcnn's anchor_target_layer rules, OHEM as in the SSH authors' layer),
// one workgroup per call (one image, one module) so that the data-dependent counts never leave the GPU.
// src/reference/ohem.rs is the CPU reference; src/ops/ohem.rs documents the rules.
//   Positives (label 1) keep at most num_fg, negatives (label 0) at most batch − positives kept; other labels are −1.
//   The kept anchors of a class are those with the smallest keys, equal keys by the lower flat index a·H·W + y·W + x.
//   Keys: OHEM: positives by face probability ascending (hard positives), negatives descending (hard negatives),
//   NaN after every number in both, −0 equal to +0. Random: pcg(index + pcg(seed)), a bijection of the index, so
//   no two keys are equal. The seed is a storage input the host writes per run (not a Params field), so one compiled
//   step serves every seed. "All" passes num_fg = batch = u32::MAX, keeping every labelled anchor.
// Selection is an exact radix select: four passes of 8-bit histograms in workgroup memory find the k-th smallest key
// T and how many of the keys equal to T still fit; a last pass ranks the keys equal to T in index order (each thread
// owns a contiguous run of indices, so an exclusive scan of the per-thread counts gives the ranks). O(len) per pass.
struct Params {
    len: u32,    // A·H·W
    hw: u32,     // H·W
    num_fg: u32, // most positives kept
    batch: u32,  // most positives + negatives kept
    random: u32, // 1: random keys from seed[0]; 0: probability keys
    norm: u32,   // 0: outside weight 1/(positives + negatives kept); 1: 1/(positives kept)
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> labels: array<f32>;           // [A, H, W]: 1, 0 or −1
@group(0) @binding(2) var<storage, read> prob: array<f32>;             // [A, H, W] face probability
@group(0) @binding(3) var<storage, read_write> out_labels: array<f32>; // [A, H, W]
@group(0) @binding(4) var<storage, read_write> weights: array<f32>;    // [4A, H, W] outside weights
@group(0) @binding(5) var<storage, read_write> stats: array<u32>;      // [4]: kept +, kept −, available +, −
@group(0) @binding(6) var<storage, read> seed: array<u32>;             // [1]: random-sampling seed

const WG: u32 = 256u;
const NEG: u32 = 0u;
const POS: u32 = 1u;
const OTHER: u32 = 2u;
const KEY_MAX: u32 = 0xffffffffu;

var<workgroup> hist: array<atomic<u32>, 256>;
// Per thread: the positive and negative keys of its run equal to the thresholds, then their exclusive scan.
var<workgroup> runs: array<vec2<u32>, 256>;
var<workgroup> pick: vec2<u32>;

// Class of a label, from its bits (WGSL lets compilers assume that NaN never occurs, so no float compares).
fn class_of(i: u32) -> u32 {
    let b = bitcast<u32>(labels[i]);
    if (b == 0x3f800000u) {
        return POS;
    }
    if ((b & 0x7fffffffu) == 0u) {
        return NEG;
    }
    return OTHER;
}

// PCG hash (Jarzynski & Olano 2020): every step is a bijection of u32.
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// The f32 order as a u32 order: −0 maps as +0, NaN to KEY_MAX, above +inf's 0xff800000.
fn mono(x: f32) -> u32 {
    var b = bitcast<u32>(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return KEY_MAX;
    }
    if (b == 0x80000000u) {
        b = 0u;
    }
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn key(i: u32, cls: u32) -> u32 {
    if (p.random == 1u) {
        return pcg(i + pcg(seed[0]));
    }
    let m = mono(prob[i]);
    // ~m of a number is at most ~mono(−inf) = 0xff800000, so NaN stays last for negatives too.
    if (cls == POS || m == KEY_MAX) {
        return m;
    }
    return ~m;
}

// (T, e) for keeping the k smallest (key, index) of class `cls` (total of them): keys < T and the first e keys equal
// to T in index order. k, total are workgroup-uniform, so the barriers are too.
fn radix_select(t: u32, cls: u32, k: u32, total: u32) -> vec2<u32> {
    if (k >= total) {
        return vec2<u32>(KEY_MAX, total);
    }
    if (k == 0u) {
        return vec2<u32>(0u, 0u);
    }
    var prefix = 0u;
    var mask = 0u;
    var rest = k; // rank (1-based) of the k-th smallest among the keys matching `prefix` under `mask`
    for (var digit = 0u; digit < 4u; digit++) {
        let shift = 24u - 8u * digit;
        atomicStore(&hist[t], 0u);
        workgroupBarrier();
        for (var i = t; i < p.len; i += WG) {
            if (class_of(i) == cls) {
                let kk = key(i, cls);
                if ((kk & mask) == prefix) {
                    atomicAdd(&hist[(kk >> shift) & 255u], 1u);
                }
            }
        }
        workgroupBarrier();
        if (t == 0u) {
            var before = 0u;
            var d = 0u;
            for (; d < 255u; d++) {
                let c = atomicLoad(&hist[d]);
                if (before + c >= rest) {
                    break;
                }
                before += c;
            }
            pick = vec2<u32>(d, before);
        }
        // Also the barrier that orders thread 0's histogram reads before the next pass clears it.
        let pk = workgroupUniformLoad(&pick);
        prefix |= pk.x << shift;
        mask |= 255u << shift;
        rest -= pk.y;
    }
    return vec2<u32>(prefix, rest);
}

@compute @workgroup_size(256)
fn ohem(@builtin(local_invocation_index) t: u32) {
    atomicStore(&hist[t], 0u);
    workgroupBarrier();
    var np = 0u;
    var nn = 0u;
    for (var i = t; i < p.len; i += WG) {
        let c = class_of(i);
        np += select(0u, 1u, c == POS);
        nn += select(0u, 1u, c == NEG);
    }
    atomicAdd(&hist[0], np);
    atomicAdd(&hist[1], nn);
    workgroupBarrier();
    if (t == 0u) {
        pick = vec2<u32>(atomicLoad(&hist[0]), atomicLoad(&hist[1]));
    }
    let avail = workgroupUniformLoad(&pick);
    // The host keeps num_fg ≤ batch, so batch − kp does not wrap.
    let kp = min(avail.x, p.num_fg);
    let kn = min(avail.y, p.batch - kp);
    let sp = radix_select(t, POS, kp, avail.x);
    let sn = radix_select(t, NEG, kn, avail.y);

    let run = (p.len + WG - 1u) / WG;
    let lo = min(t * run, p.len);
    let hi = min(lo + run, p.len);
    var eq = vec2<u32>(0u);
    for (var i = lo; i < hi; i++) {
        let c = class_of(i);
        if (c != OTHER) {
            let s = select(sn, sp, c == POS);
            let hit = select(0u, 1u, key(i, c) == s.x);
            eq += select(vec2<u32>(0u, hit), vec2<u32>(hit, 0u), c == POS);
        }
    }
    runs[t] = eq;
    workgroupBarrier();
    if (t == 0u) {
        var acc = vec2<u32>(0u);
        for (var j = 0u; j < WG; j++) {
            let c = runs[j];
            runs[j] = acc;
            acc += c;
        }
    }
    workgroupBarrier();
    var rank = runs[t];
    let n = select(kp + kn, kp, p.norm == 1u);
    // max(n, 1) keeps 1/0 (an infinity) out of the arithmetic even where it is not selected.
    let w = select(0.0, 1.0 / f32(max(n, 1u)), n > 0u);
    for (var i = lo; i < hi; i++) {
        let c = class_of(i);
        var keep = false;
        if (c != OTHER) {
            let s = select(sn, sp, c == POS);
            let k = key(i, c);
            let r = select(rank.y, rank.x, c == POS);
            keep = k < s.x || (k == s.x && r < s.y);
            if (k == s.x) {
                rank += select(vec2<u32>(0u, 1u), vec2<u32>(1u, 0u), c == POS);
            }
        }
        out_labels[i] = select(-1.0, f32(c), keep);
        let o = 4u * (i / p.hw) * p.hw + i % p.hw;
        for (var j = 0u; j < 4u; j++) {
            weights[o + j * p.hw] = select(0.0, w, keep);
        }
    }
    if (t == 0u) {
        stats[0] = kp;
        stats[1] = kn;
        stats[2] = avail.x;
        stats[3] = avail.y;
    }
}
