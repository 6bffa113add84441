// Greedy sweep over the suppression mask, one workgroup per image: visit candidates in order, keep one unless an
// earlier kept candidate removed it, and OR its mask row into `removed`. Thread 0 resolves 32 candidates of one word
// sequentially; then all threads OR the kept rows into the later words and copy the kept rows out.
// Writes the kept rows score-descending (zeros after them) and counts = (kept, candidates > cap).
override WG: u32 = 256u;

struct Params {
    rows: u32,  // R
    len: u32,   // records per image
    cap: u32,   // max_candidates, at most 32 · 1024
    words: u32, // ceil(cap / 32)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rows: array<f32>;          // [N, R, 16]
@group(0) @binding(2) var<storage, read> recs: array<vec2<u32>>;    // [N, len]
@group(0) @binding(3) var<storage, read> count: array<u32>;         // [N]
@group(0) @binding(4) var<storage, read> mask: array<u32>;          // [N, cap, words]
@group(0) @binding(5) var<storage, read_write> out: array<f32>;     // [N, cap, 16]
@group(0) @binding(6) var<storage, read_write> counts: array<u32>;  // [N, 2]

var<workgroup> removed: array<u32, 1024>;
var<workgroup> keep_bits: u32;
var<workgroup> found: u32;

@compute @workgroup_size(WG)
fn nms(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let n = wid.z;
    if (t == 0u) {
        found = count[n];
    }
    let total = workgroupUniformLoad(&found);
    let c = min(total, p.cap);
    let words = (c + 31u) / 32u;
    for (var w = t; w < words; w += WG) {
        removed[w] = 0u;
    }
    workgroupBarrier();
    let mrow = n * p.cap * p.words;
    var kept = 0u;
    for (var b = 0u; b < words; b++) {
        if (t == 0u) {
            var cur = removed[b];
            var km = 0u;
            let end = min(32u, c - 32u * b);
            for (var k = 0u; k < end; k++) {
                if ((cur & (1u << k)) == 0u) {
                    km |= 1u << k;
                    cur |= mask[mrow + (32u * b + k) * p.words + b];
                }
            }
            keep_bits = km;
        }
        let km = workgroupUniformLoad(&keep_bits);
        for (var w = b + 1u + t; w < words; w += WG) {
            var acc = removed[w];
            var bits = km;
            while (bits != 0u) {
                let k = firstTrailingBit(bits);
                acc |= mask[mrow + (32u * b + k) * p.words + w];
                bits &= bits - 1u;
            }
            removed[w] = acc;
        }
        for (var e = t; e < 512u; e += WG) {
            let k = e / 16u;
            if (((km >> k) & 1u) == 1u) {
                let slot = kept + countOneBits(km & ((1u << k) - 1u));
                let row = recs[n * p.len + 32u * b + k].x & 0x07ffffffu;
                out[(n * p.cap + slot) * 16u + e % 16u] = rows[(n * p.rows + row) * 16u + e % 16u];
            }
        }
        kept += countOneBits(km);
        workgroupBarrier();
    }
    for (var e = kept * 16u + t; e < p.cap * 16u; e += WG) {
        out[n * p.cap * 16u + e] = 0.0;
    }
    if (t == 0u) {
        counts[n * 2u] = kept;
        counts[n * 2u + 1u] = select(0u, 1u, total > p.cap);
    }
}
