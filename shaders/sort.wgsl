// Bitonic sort, ascending, of (group, key, index) records in place; one image per workgroup z.
// A record is vec2(group << 27 | index, key); the order is (group, key, index) lexicographic, so one sort orders rows
// by segment and, within a segment, by key (an inverted score) and then row index.
// `sort` is one global compare-exchange pass (k, j); `sort_local` runs every pass with j < 2·WG of the stages
// k_lo..=k_hi inside workgroup memory.
override WG: u32 = 256u;

struct Params {
    len: u32,   // records per image, a power of two
    k_lo: u32,  // first bitonic stage (block size of the merge)
    k_hi: u32,  // last stage; `sort` uses k_lo == k_hi
    j: u32,     // compare distance of the `sort` pass
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> recs: array<vec2<u32>>; // [N, len]

var<workgroup> tile: array<vec2<u32>, 512>;

fn less(a: vec2<u32>, b: vec2<u32>) -> bool {
    let ga = a.x >> 27u;
    let gb = b.x >> 27u;
    if (ga != gb) {
        return ga < gb;
    }
    if (a.y != b.y) {
        return a.y < b.y;
    }
    return (a.x & 0x07ffffffu) < (b.x & 0x07ffffffu);
}

@compute @workgroup_size(WG)
fn sort(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    if (t >= p.len / 2u) {
        return;
    }
    let i = 2u * p.j * (t / p.j) + t % p.j;
    let l = i + p.j;
    let base = gid.z * p.len;
    let a = recs[base + i];
    let b = recs[base + l];
    let up = (i & p.k_lo) == 0u;
    if (select(less(a, b), less(b, a), up)) {
        recs[base + i] = b;
        recs[base + l] = a;
    }
}

@compute @workgroup_size(WG)
fn sort_local(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let block = 2u * WG;
    let first = (wid.x + wid.y * nwg.x) * block;
    let base = wid.z * p.len;
    // A 2-D split dispatch may have spare workgroups; workgroup_id is uniform, so barriers stay uniform.
    if (first >= p.len) {
        return;
    }
    let t = lid.x;
    tile[t] = recs[base + first + t];
    tile[t + WG] = recs[base + first + t + WG];
    workgroupBarrier();
    var k = p.k_lo;
    loop {
        if (k > p.k_hi) {
            break;
        }
        var j = min(k / 2u, WG);
        loop {
            if (j == 0u) {
                break;
            }
            let i = 2u * j * (t / j) + t % j;
            let l = i + j;
            let a = tile[i];
            let b = tile[l];
            let up = ((first + i) & k) == 0u;
            if (select(less(a, b), less(b, a), up)) {
                tile[i] = b;
                tile[l] = a;
            }
            workgroupBarrier();
            j = j / 2u;
        }
        k = k * 2u;
    }
    recs[base + first + t] = tile[t];
    recs[base + first + t + WG] = tile[t + WG];
}
