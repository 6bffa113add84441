// 2-D convolution (cross-correlation) of NCHW f32 maps with OIHW weights, fused epilogue
// out = act(conv(x) + bias + residual), written at channels c_off.. of a possibly larger output.
//
// Entry points (the launcher picks one from the conv's shape):
//   conv2d            implicit GEMM, 4x4 outputs per thread, 16x256 to 64x64 (channels x pixels) per workgroup
//   conv2d_1x1        the same GEMM for 1x1 / stride 1 / pad 0: no im2col index arithmetic
//   conv2d_depthwise  C_in/groups == 1: 4 outputs along a row per thread, no workgroup memory
//   conv2d_naive      one output per thread: the speed baseline, kept tested
override ACT: u32 = 0u;      // 0 none, 1 ReLU, 2 ReLU6, 3 LeakyReLU(ALPHA)
override ALPHA: f32 = 0.1;
override HAS_BIAS: bool = false;
override HAS_RES: bool = false;
override WG: u32 = 64u;      // workgroup size of the 1-D entries (depthwise, naive)

struct Params {
    n: u32, c_in: u32, h: u32, w: u32,
    c_out: u32, ho: u32, wo: u32, c_total: u32,
    c_off: u32, kh: u32, kw: u32, sy: u32,
    sx: u32, pt: u32, pl: u32, dy: u32,
    dx: u32, cin_g: u32, cout_g: u32, k: u32,      // k = cin_g * kh * kw, the GEMM depth
    p_total: u32, m_tiles: u32, _p0: u32, _p1: u32, // p_total = n * ho * wo; m_tiles per group
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // [N, C_in, H, W]
@group(0) @binding(2) var<storage, read> res: array<f32>;        // [N, C_out, Ho, Wo]; x again when !HAS_RES
@group(0) @binding(3) var<storage, read> wt: array<f32>;         // [C_out, C_in / groups, KH, KW]
@group(0) @binding(4) var<storage, read> bias: array<f32>;       // [C_out]; wt again when !HAS_BIAS
@group(0) @binding(5) var<storage, read_write> out: array<f32>;  // [N, C_total, Ho, Wo]

fn act(v: f32) -> f32 {
    switch ACT {
        case 1u: { return max(v, 0.0); }
        case 2u: { return min(max(v, 0.0), 6.0); }
        case 3u: { return select(ALPHA * v, v, v >= 0.0); }
        default: { return v; }
    }
}

// pix = oy * wo + ox; co counts all C_out channels (not within the group).
fn store(n: u32, co: u32, pix: u32, v: f32) {
    let hw = p.ho * p.wo;
    var s = v;
    if (HAS_BIAS) {
        s += bias[co];
    }
    if (HAS_RES) {
        s += res[(n * p.c_out + co) * hw + pix];
    }
    out[(n * p.c_total + p.c_off + co) * hw + pix] = act(s);
}

// GEMM tiling: 256 threads as TMT (channels) x TNT (pixels), each accumulating 4 channels x 4 pixels,
// so a workgroup computes TM x TN = 4·TMT x 4·TNT outputs. TMT is 4, 8 or 16: small C_out (detection
// heads) takes narrow, wide tiles instead of wasting most of a 64-channel tile.
override TMT: u32 = 16u;
// Derived; the host sets only TMT.
override TNT: u32 = 256u / TMT;
override TM: u32 = 4u * TMT;
override TN: u32 = 4u * TNT;
const TK: u32 = 16u; // GEMM depth staged per barrier
var<workgroup> sa: array<f32, TK * TM>; // [TK][TM] weights
var<workgroup> sb: array<f32, TK * TN>; // [TK][TN] im2col patch

// One TM x TN output tile. GEMM: M = C_out/groups, N = pixels of all images, K = C_in/groups*KH*KW.
// `pointwise` is a literal at each call, so drivers fold it after inlining.
fn gemm_tile(lid: u32, tile: u32, wy: u32, pointwise: bool) {
    let grp = wy / p.m_tiles;
    let m0 = (wy % p.m_tiles) * TM;
    let p0 = tile * TN;
    let hw = p.ho * p.wo;
    let khw = p.kh * p.kw;

    // Each thread stages one pixel column of the patch, rows brow + (256/TN)·j; decode it once, not per k.
    let bcol = lid % TN;
    let brow = lid / TN;
    let bstep = 256u / TN;
    let bp = p0 + bcol;
    let bvalid = bp < p.p_total;
    let bn = bp / hw;
    let bpix = bp % hw;
    let iy0 = i32((bpix / p.wo) * p.sy) - i32(p.pt);
    let ix0 = i32((bpix % p.wo) * p.sx) - i32(p.pl);
    let xbase = (bn * p.c_in + grp * p.cin_g) * p.h * p.w;
    // Weight staging: consecutive threads read consecutive k of one row (coalesced).
    let ak = lid % TK;
    let am = lid / TK;
    let wbase = grp * p.cout_g + m0;
    // Compute: thread (tx, ty) owns pixels tx + TNT·j and channels ty + TMT·i of the tile.
    let tx = lid % TNT;
    let ty = lid / TNT;

    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var j = 0u; j < TM / 16u; j++) {
            let m = am + 16u * j;
            let ka = k0 + ak;
            var v = 0.0;
            if (ka < p.k && m0 + m < p.cout_g) {
                v = wt[(wbase + m) * p.k + ka];
            }
            sa[ak * TM + m] = v;
        }
        for (var j = 0u; j < TK / bstep; j++) {
            let kk = brow + bstep * j;
            let kb = k0 + kk;
            var v = 0.0;
            if (bvalid && kb < p.k) {
                if (pointwise) {
                    v = x[xbase + kb * hw + bpix];
                } else {
                    let ci = kb / khw;
                    let r = kb % khw;
                    let iy = iy0 + i32((r / p.kw) * p.dy);
                    let ix = ix0 + i32((r % p.kw) * p.dx);
                    if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                        v = x[xbase + (ci * p.h + u32(iy)) * p.w + u32(ix)];
                    }
                }
            }
            sb[kk * TN + bcol] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let r = kk * TN + tx;
            let b = vec4<f32>(sb[r], sb[r + TNT], sb[r + 2u * TNT], sb[r + 3u * TNT]);
            let a = kk * TM + ty;
            acc[0] += sa[a] * b;
            acc[1] += sa[a + TMT] * b;
            acc[2] += sa[a + 2u * TMT] * b;
            acc[3] += sa[a + 3u * TMT] * b;
        }
        workgroupBarrier();
    }

    for (var j = 0u; j < 4u; j++) {
        let pp = p0 + tx + TNT * j;
        if (pp >= p.p_total) {
            continue;
        }
        let n = pp / hw;
        let pix = pp % hw;
        for (var i = 0u; i < 4u; i++) {
            let m = m0 + ty + TMT * i;
            if (m < p.cout_g) {
                store(n, grp * p.cout_g + m, pix, acc[i][j]);
            }
        }
    }
}

// Workgroups: x (and z when there are more than 65,535 pixel tiles) = pixel tiles, y = groups * m_tiles.
@compute @workgroup_size(256)
fn conv2d(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let tile = wid.x + wid.z * nwg.x;
    if (tile * TN >= p.p_total) {
        return;
    }
    gemm_tile(lid, tile, wid.y, false);
}

@compute @workgroup_size(256)
fn conv2d_1x1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let tile = wid.x + wid.z * nwg.x;
    if (tile * TN >= p.p_total) {
        return;
    }
    gemm_tile(lid, tile, wid.y, true);
}

// One thread per 4 consecutive outputs of a row: the KHxKW weights are read once for 4 outputs.
@compute @workgroup_size(WG)
fn conv2d_depthwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let quads = (p.wo + 3u) / 4u;
    if (i >= p.n * p.c_out * p.ho * quads) {
        return;
    }
    let ox0 = (i % quads) * 4u;
    let t = i / quads;
    let oy = t % p.ho;
    let t2 = t / p.ho;
    let co = t2 % p.c_out;
    let n = t2 / p.c_out;
    // C_in/groups == 1, so the group index is the input channel.
    let xbase = (n * p.c_in + co / p.cout_g) * p.h * p.w;
    let ix0 = vec4<i32>(vec4<u32>(ox0, ox0 + 1u, ox0 + 2u, ox0 + 3u) * p.sx) - i32(p.pl);
    var acc = vec4<f32>(0.0);
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(oy * p.sy + ky * p.dy) - i32(p.pt);
        if (iy < 0 || iy >= i32(p.h)) {
            continue;
        }
        let row = xbase + u32(iy) * p.w;
        for (var kx = 0u; kx < p.kw; kx++) {
            let wv = wt[(co * p.kh + ky) * p.kw + kx];
            let ix = ix0 + i32(kx * p.dx);
            for (var j = 0u; j < 4u; j++) {
                if (ix[j] >= 0 && ix[j] < i32(p.w)) {
                    acc[j] += wv * x[row + u32(ix[j])];
                }
            }
        }
    }
    let pix = oy * p.wo + ox0;
    for (var j = 0u; j < 4u; j++) {
        if (ox0 + j < p.wo) {
            store(n, co, pix + j, acc[j]);
        }
    }
}

// One thread per output element, straight from global memory.
@compute @workgroup_size(WG)
fn conv2d_naive(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let hw = p.ho * p.wo;
    if (i >= p.n * p.c_out * hw) {
        return;
    }
    let pix = i % hw;
    let co = (i / hw) % p.c_out;
    let n = i / (hw * p.c_out);
    let oy = pix / p.wo;
    let ox = pix % p.wo;
    let grp = co / p.cout_g;
    var acc = 0.0;
    for (var ci = 0u; ci < p.cin_g; ci++) {
        let xbase = (n * p.c_in + grp * p.cin_g + ci) * p.h * p.w;
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = i32(oy * p.sy + ky * p.dy) - i32(p.pt);
            if (iy < 0 || iy >= i32(p.h)) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = i32(ox * p.sx + kx * p.dx) - i32(p.pl);
                if (ix >= 0 && ix < i32(p.w)) {
                    acc += wt[((co * p.cin_g + ci) * p.kh + ky) * p.kw + kx]
                        * x[xbase + u32(iy) * p.w + u32(ix)];
                }
            }
        }
    }
    store(n, co, pix, acc);
}
