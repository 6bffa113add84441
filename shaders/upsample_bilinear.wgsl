// SSH's fixed bilinear ×2 deconvolution (Caffe Deconvolution k4 s2 p1, depthwise, taps 0.25/0.75) with a
// top-left crop, in closed form: per axis up[2j] = 0.75·x[j] + 0.25·x[j−1], up[2j+1] = 0.75·x[j] + 0.25·x[j+1],
// where out-of-range x is 0. The zero border is what attenuates the first and last rows and columns.
override WG: u32 = 256u;

// Element type of the feature maps this shader reads or writes; build.rs generates the f16 variant
// (<name>_f16.wgsl) in which Map is f16. Arithmetic is f32 in both.
alias Map = f32;

struct Params {
    len: u32,   // N·C·Ho·Wo
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    // Row strips: out holds output rows oy0.., x holds input rows row0.. of a map of h_full rows (0, 0, H unsplit).
    oy0: u32,
    row0: u32,
    h_full: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Map>;         // [N, C, H, W]
@group(0) @binding(2) var<storage, read_write> out: array<Map>; // [N, C, Ho, Wo], Ho ≤ 2H, Wo ≤ 2W

// The neighbour tap of output index o along an axis of size n: its index and weight (0 outside the input).
fn neighbour(o: u32, n: u32) -> vec2<i32> {
    let j = i32(o >> 1u);
    let k = select(j + 1, j - 1, (o & 1u) == 0u);
    let inside = k >= 0 && k < i32(n);
    return vec2<i32>(select(0, k, inside), select(0, 1, inside));
}

@compute @workgroup_size(WG)
fn upsample_bilinear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    let ox = i % p.wo;
    let oy = (i / p.wo) % p.ho;
    let base = (i / (p.wo * p.ho)) * p.h * p.w;
    let gy = oy + p.oy0;
    let jy = gy >> 1u;
    let jx = ox >> 1u;
    let ny = neighbour(gy, p.h_full);
    let nx = neighbour(ox, p.w);
    let wy = 0.25 * f32(ny.y);
    let wx = 0.25 * f32(nx.y);
    // Outside the map the neighbour's weight is 0; row jy stands in for it (inside every strip's window).
    let ky = select(jy, u32(ny.x), ny.y == 1);
    let r0 = base + (jy - p.row0) * p.w;
    let r1 = base + (ky - p.row0) * p.w;
    // Rows first, then columns, as the separable kernel factors.
    let row0 = 0.75 * f32(x[r0 + jx]) + wx * f32(x[r0 + u32(nx.x)]);
    let row1 = 0.75 * f32(x[r1 + jx]) + wx * f32(x[r1 + u32(nx.x)]);
    out[i] = Map(0.75 * row0 + wy * row1);
}
