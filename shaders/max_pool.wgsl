// Max pooling, one invocation per output element. Windows are clipped to the input (Caffe), so padding
// never takes part in the max; the launcher guarantees every clipped window is non-empty.
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
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Map>;         // [N, C, H, W]
@group(0) @binding(2) var<storage, read_write> out: array<Map>; // [N, C, Ho, Wo]

@compute @workgroup_size(WG)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    let ox = i % p.wo;
    let oy = (i / p.wo) % p.ho;
    let plane = i / (p.wo * p.ho); // n·C + c
    // Signed start so the leading padding clips to 0.
    let y0 = i32(oy * p.sh) - i32(p.ph);
    let x0 = i32(ox * p.sw) - i32(p.pw);
    let ys = u32(max(y0, 0));
    let xs = u32(max(x0, 0));
    let ye = u32(min(y0 + i32(p.kh), i32(p.h)));
    let xe = u32(min(x0 + i32(p.kw), i32(p.w)));
    let base = plane * p.h * p.w;
    // -FLT_MAX by its bits: the decimal -3.40282347e+38 lies beyond f32's range, which Tint rejects.
    var m = bitcast<f32>(0xff7fffffu);
    for (var y = ys; y < ye; y++) {
        let row = base + y * p.w;
        for (var xx = xs; xx < xe; xx++) {
            m = max(m, f32(x[row + xx]));
        }
    }
    out[i] = Map(m);
}
