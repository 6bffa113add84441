// Repacks a conv weight [groups · rows, k] (row-major: output channel, then C_in/groups·KH·KW) into
// [groups, kp, mp]: k-major, rows padded with zeros to mp and depths to kp. conv2d_gemm.wgsl stages a
// slice of BK depths × BM channels of it with one aligned vec4 per thread and no bounds checks
// (src/ops/pack_kmajor.rs has the layout's rules). One thread per packed element.
alias Map = f32;

override WG: u32 = 256u;

struct Params {
    rows: u32,   // output channels per group
    k: u32,      // depth per output channel
    kp: u32,     // k padded (>= k)
    mp: u32,     // rows padded (>= rows)
    total: u32,  // groups * kp * mp
    _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<Map>;        // [groups · rows, k]
@group(0) @binding(2) var<storage, read_write> dst: array<Map>;  // [groups, kp, mp]

@compute @workgroup_size(WG)
fn pack_kmajor(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    let m = i % p.mp;
    let kk = (i / p.mp) % p.kp;
    let grp = i / (p.mp * p.kp);
    var v = Map(0.0);
    if (m < p.rows && kk < p.k) {
        v = src[(grp * p.rows + m) * p.k + kk];
    }
    dst[i] = v;
}
