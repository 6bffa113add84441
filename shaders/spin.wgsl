// Keeps the device busy: every invocation runs `rounds` × `iters` dependent multiply-adds. The stall of the
// test-only fault injection (src/gpu/health.rs, `Fault::Stall`): a submit queued behind it outlives a short GPU
// timeout. A loop bound read from the uniform cannot be folded away, nor a float recurrence closed in form.
override WG: u32 = 64u;

struct Params {
    iters: u32,  // dependent iterations per round
    rounds: u32,
    seed: f32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // [WG · workgroups]

@compute @workgroup_size(WG)
fn spin(@builtin(global_invocation_id) gid: vec3<u32>) {
    var x = p.seed + f32(gid.x);
    for (var r = 0u; r < p.rounds; r++) {
        for (var i = 0u; i < p.iters; i++) {
            x = x * 0.99999994 + 1e-7;
        }
    }
    out[gid.x] = x;
}
