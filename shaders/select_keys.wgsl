// Sort records for selection: row p of segment g becomes vec2(g << 27 | p, key(score)), where key orders scores
// descending with NaN below every number and −0 equal to +0. Rows outside every segment and the padding up to `len`
// get u32::MAX records, which sort last.
override WG: u32 = 256u;

struct Params {
    rows: u32,      // R, rows per image
    len: u32,       // records per image, a power of two >= R
    segments: u32,  // number of used entries of `seg`
    thr_key: u32,   // key of the score threshold (used by select_topk)
    seg: array<vec4<u32>, 32>, // (offset, len, first sorted position, top_k)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rows: array<f32>;             // [N, R, 16]
@group(0) @binding(2) var<storage, read_write> recs: array<vec2<u32>>; // [N, len]

fn score_key(s: f32) -> u32 {
    var b = bitcast<u32>(s);
    // Bit tests rather than float compares: WGSL lets compilers assume that NaN never occurs.
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return 0xffffffffu;
    }
    if (b == 0x80000000u) {
        b = 0u;
    }
    let mono = select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
    return ~mono;
}

@compute @workgroup_size(WG)
fn select_keys(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // seg[31] (group 31 is no segment's): (first row, rows, records written, 0) of this call; `rows` holds rows
    // first.. of each image (a chunk of an image too large for one binding). One call over all rows: (0, R, len, 0).
    let c = p.seg[31];
    let local = gid.x + gid.y * nwg.x * WG;
    if (local >= c.z) {
        return;
    }
    let i = c.x + local;
    var rec = vec2<u32>(0xffffffffu, 0xffffffffu);
    if (local < c.y) {
        for (var g = 0u; g < p.segments; g++) {
            let s = p.seg[g];
            if (i >= s.x && i - s.x < s.y) {
                rec = vec2<u32>((g << 27u) | i, score_key(rows[(gid.z * c.y + local) * 16u + 15u]));
            }
        }
    }
    recs[gid.z * p.len + i] = rec;
}
