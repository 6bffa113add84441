// After the segment-major sort: a record at sorted position i of segment g is a candidate when its rank
// i − first(g) is below the segment's top_k and its score is above the threshold (key < thr_key). Candidates get
// group 0, everything else group 1, so a second sort lists candidates first in (score desc, row asc) order.
// Counts the candidates of each image into `count` (cleared before).
override WG: u32 = 256u;

struct Params {
    rows: u32,
    len: u32,
    segments: u32,
    thr_key: u32,
    seg: array<vec4<u32>, 32>, // (offset, len, first sorted position, top_k)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> recs: array<vec2<u32>>; // [N, len]
@group(0) @binding(2) var<storage, read_write> count: array<atomic<u32>>; // [N]

var<workgroup> wg_count: atomic<u32>;

@compute @workgroup_size(WG)
fn select_topk(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    if (lid == 0u) {
        atomicStore(&wg_count, 0u);
    }
    workgroupBarrier();
    let i = gid.x + gid.y * nwg.x * WG;
    if (i < p.len) {
        let at = gid.z * p.len + i;
        let rec = recs[at];
        let g = rec.x >> 27u;
        if (g < p.segments) {
            let s = p.seg[g];
            let kept = i - s.z < s.w && rec.y < p.thr_key;
            recs[at] = vec2<u32>((select(1u, 0u, kept) << 27u) | (rec.x & 0x07ffffffu), rec.y);
            if (kept) {
                atomicAdd(&wg_count, 1u);
            }
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        let c = atomicLoad(&wg_count);
        if (c > 0u) {
            atomicAdd(&count[gid.z], c);
        }
    }
}
