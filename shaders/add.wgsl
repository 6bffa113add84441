// Elementwise sum with a fused activation: out = act(a + b). Flat over any shape.
override WG: u32 = 256u;
override ACT: u32 = 0u;      // 0 none, 1 ReLU, 2 ReLU6, 3 LeakyReLU(ALPHA)
override ALPHA: f32 = 0.1;

// Element type of the feature maps this shader reads or writes; build.rs generates the f16 variant
// (<name>_f16.wgsl) in which Map is f16. Arithmetic is f32 in both.
alias Map = f32;

struct Params {
    len: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<Map>;         // [len]
@group(0) @binding(2) var<storage, read> b: array<Map>;         // [len]
@group(0) @binding(3) var<storage, read_write> out: array<Map>; // [len]

fn act(x: f32) -> f32 {
    switch ACT {
        case 1u: { return max(x, 0.0); }
        case 2u: { return min(max(x, 0.0), 6.0); }
        case 3u: { return select(ALPHA * x, x, x >= 0.0); }
        default: { return x; }
    }
}

@compute @workgroup_size(WG)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    out[i] = Map(act(f32(a[i]) + f32(b[i])));
}
