// Copies rows [src_row, src_row + rows) of every (n, c) plane of `x` into rows [dst_row, dst_row + rows) of `out`.
// Slices a band out of a feature map and pastes a band back into one, for layers run in row strips.
override WG: u32 = 256u;

// Element type of the feature maps this shader reads or writes; build.rs generates the f16 variant
// (<name>_f16.wgsl) in which Map is f16. Arithmetic is f32 in both.
alias Map = f32;

struct Params {
    len: u32,     // N·C·rows·W
    c: u32,
    w: u32,
    rows: u32,
    h_src: u32,
    src_row: u32,
    h_dst: u32,
    dst_row: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Map>;         // [N, C, H_src, W]
@group(0) @binding(2) var<storage, read_write> out: array<Map>; // [N, C, H_dst, W]

@compute @workgroup_size(WG)
fn copy_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    let x0 = i % p.w;
    let r = (i / p.w) % p.rows;
    let plane = i / (p.w * p.rows); // n·C + c
    out[(plane * p.h_dst + p.dst_row + r) * p.w + x0] = Map(f32(x[(plane * p.h_src + p.src_row + r) * p.w + x0]));
}
