// Backward of max_pool.wgsl (Caffe's MAX pooling, windows clipped to the input): each input element
// gathers dy of the windows whose FIRST maximum (row-major scan, strict >, from -FLT_MAX, as Caffe's mask)
// it is, in window order. The maxima are recomputed from the forward input x. One invocation per input.
override WG: u32 = 256u;

struct Params {
    len: u32,   // N·C·H·W
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
@group(0) @binding(1) var<storage, read> x: array<f32>;         // [N, C, H, W] forward input
@group(0) @binding(2) var<storage, read> dy: array<f32>;        // [N, C, Ho, Wo]
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;  // [N, C, H, W]

// Flat index (y·W + x) of the first maximum of window (oy, ox) in plane `base`, or -1 when no element
// exceeds -FLT_MAX (Caffe's mask stays -1 and the window passes no gradient).
fn argmax(base: u32, oy: u32, ox: u32) -> i32 {
    let y0 = i32(oy * p.sh) - i32(p.ph);
    let x0 = i32(ox * p.sw) - i32(p.pw);
    let ye = u32(min(y0 + i32(p.kh), i32(p.h)));
    let xe = u32(min(x0 + i32(p.kw), i32(p.w)));
    var m = bitcast<f32>(0xff7fffffu);
    var idx = -1;
    for (var yy = u32(max(y0, 0)); yy < ye; yy++) {
        for (var xx = u32(max(x0, 0)); xx < xe; xx++) {
            let v = x[base + yy * p.w + xx];
            if (v > m) {
                m = v;
                idx = i32(yy * p.w + xx);
            }
        }
    }
    return idx;
}

@compute @workgroup_size(WG)
fn max_pool_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    let hw = p.h * p.w;
    let plane = i / hw;
    let me = i32(i % hw);
    let iy = (i % hw) / p.w;
    let ix = i % p.w;
    // Windows oy with oy·sh − ph ≤ iy < oy·sh − ph + kh.
    let oy0 = u32(max(i32(iy + p.ph) - i32(p.kh) + i32(p.sh), 0)) / p.sh;
    let oy1 = min((iy + p.ph) / p.sh + 1u, p.ho);
    let ox0 = u32(max(i32(ix + p.pw) - i32(p.kw) + i32(p.sw), 0)) / p.sw;
    let ox1 = min((ix + p.pw) / p.sw + 1u, p.wo);
    var g = 0.0;
    for (var oy = oy0; oy < oy1; oy++) {
        for (var ox = ox0; ox < ox1; ox++) {
            if (argmax(plane * hw, oy, ox) == me) {
                g += dy[(plane * p.ho + oy) * p.wo + ox];
            }
        }
    }
    dx[i] = g;
}
