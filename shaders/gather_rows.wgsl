// Candidates of a selection whose decoded rows are held in chunks (row strips of an image too large for one
// binding): for each of the first min(count, cap) sorted records, copies its row into `cand` at the record's position
// when the row lies in this chunk; the dispatch of the last chunk then points the record at that position, so that
// NMS reads `cand` [N, cap, 16] as its rows, in the same order, with the same values.
override WG: u32 = 256u;

struct Params {
    len: u32,   // records per image
    cap: u32,   // max_candidates
    base: u32,  // first row (per image) of this chunk
    chunk: u32, // rows of this chunk
    last: u32,  // 1: renumber the records after copying
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

const ROW_BITS: u32 = 0x7ffffffu; // the record's row; the segment is in the bits above

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rows: array<f32>;             // [N, chunk, 16]
@group(0) @binding(2) var<storage, read> count: array<u32>;            // [N]
@group(0) @binding(3) var<storage, read_write> recs: array<vec2<u32>>; // [N, len]
@group(0) @binding(4) var<storage, read_write> cand: array<f32>;       // [N, cap, 16]

@compute @workgroup_size(WG)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = gid.x + gid.y * nwg.x * WG;
    let n = gid.z;
    if (c >= min(count[n], p.cap)) {
        return;
    }
    let r = recs[n * p.len + c];
    let row = r.x & ROW_BITS;
    if (row >= p.base && row - p.base < p.chunk) {
        let src = (n * p.chunk + row - p.base) * 16u;
        let dst = (n * p.cap + c) * 16u;
        for (var e = 0u; e < 16u; e++) {
            cand[dst + e] = rows[src + e];
        }
    }
    if (p.last == 1u) {
        recs[n * p.len + c] = vec2<u32>((r.x & ~ROW_BITS) | c, r.y);
    }
}
