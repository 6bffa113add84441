// Backward of a ReLU (fused into conv2d's epilogue or add's) from its forward output y:
// dx = dy where y > 0, else 0 (y > 0 exactly where the input was > 0). Flat over any shape.
override WG: u32 = 256u;

struct Params {
    len: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;          // [len] forward output
@group(0) @binding(2) var<storage, read> dy: array<f32>;         // [len]
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;   // [len]

@compute @workgroup_size(WG)
fn relu_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    dx[i] = select(0.0, dy[i], y[i] > 0.0);
}
