// TF ResizeNearestNeighbor, align_corners = false, half_pixel_centers = true:
// src = min(floor((dst + 0.5)·scale), in − 1) with scale = in/out rounded to f32 on the host, as TF computes it
// (WGSL division is not correctly rounded, so the scale is not divided here).
override WG: u32 = 256u;

// Element type of the feature maps this shader reads or writes; build.rs generates the f16 variant
// (<name>_f16.wgsl) in which Map is f16. Arithmetic is f32 in both.
alias Map = f32;

struct Params {
    len: u32,     // N·C·Ho·Wo
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    scale_y: f32, // H / Ho
    scale_x: f32, // W / Wo
    // Row strips: out holds output rows oy0.., x holds input rows row0.. of a map of h_full rows (0, 0, H unsplit).
    oy0: u32,
    row0: u32,
    h_full: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Map>;         // [N, C, H, W] (rows row0.. of h_full)
@group(0) @binding(2) var<storage, read_write> out: array<Map>; // [N, C, Ho, Wo]

fn src(dst: u32, scale: f32, n: u32) -> u32 {
    return min(u32(floor((f32(dst) + 0.5) * scale)), n - 1u);
}

@compute @workgroup_size(WG)
fn upsample_nearest(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    let ox = i % p.wo;
    let oy = (i / p.wo) % p.ho;
    let base = (i / (p.wo * p.ho)) * p.h * p.w;
    let sy = src(oy + p.oy0, p.scale_y, p.h_full) - p.row0;
    out[i] = Map(f32(x[base + sy * p.w + src(ox, p.scale_x, p.w)]));
}
