// 2-D convolution (cross-correlation) of NCHW f32 maps with OIHW weights, fused epilogue
// out = act(conv(x) + bias + residual), written at channels c_off.. of a possibly larger output.
//
// Entry points (the launcher picks one from the conv's shape):
//   conv2d            implicit GEMM, 8x8 outputs per thread, 16x256 to 64x64 (channels x pixels) per workgroup
//   conv2d_1x1        the same GEMM for 1x1 / stride 1 / pad 0: no im2col index arithmetic
//   conv2d_1x1_direct 1x1 / stride 1 / pad 0, 4 pixels x 16 channels per thread, no workgroup memory
//   conv2d_depthwise  C_in/groups == 1: 4 outputs along a row per thread, no workgroup memory
//   conv2d_dw3        depthwise 3x3 at stride 1 or 2: 8 outputs along a row from a register row segment
//   conv2d_naive      one output per thread: the speed baseline, kept tested
override ACT: u32 = 0u;      // 0 none, 1 ReLU, 2 ReLU6, 3 LeakyReLU(ALPHA)
override ALPHA: f32 = 0.1;
override HAS_BIAS: bool = false;
override HAS_RES: bool = false;
override WG: u32 = 64u;      // workgroup size of the 1-D entries (depthwise, naive)

// Element type of the feature maps this shader reads or writes; build.rs generates the f16 variant
// (<name>_f16.wgsl) in which Map is f16. Arithmetic is f32 in both.
alias Map = f32;

struct Params {
    n: u32, c_in: u32, h: u32, w: u32,
    c_out: u32, ho: u32, wo: u32, c_total: u32,
    c_off: u32, kh: u32, kw: u32, sy: u32,
    sx: u32, pt: u32, pl: u32, dy: u32,
    dx: u32, cin_g: u32, cout_g: u32, k: u32,      // k = cin_g * kh * kw, the GEMM depth
    p_total: u32, m_tiles: u32, _p0: u32, _p1: u32, // p_total = n * ho * wo; m_tiles per group
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Map>;          // [N, C_in, H, W]
@group(0) @binding(2) var<storage, read> res: array<Map>;        // [N, C_out, Ho, Wo]; x again when !HAS_RES
@group(0) @binding(3) var<storage, read> wt: array<Map>;         // [C_out, C_in / groups, KH, KW]
@group(0) @binding(4) var<storage, read> bias: array<f32>;       // [C_out]; wt again when !HAS_BIAS
@group(0) @binding(5) var<storage, read_write> out: array<Map>;  // [N, C_total, Ho, Wo]

fn act(v: f32) -> f32 {
    switch ACT {
        case 1u: { return max(v, 0.0); }
        case 2u: { return min(max(v, 0.0), 6.0); }
        case 3u: { return select(ALPHA * v, v, v >= 0.0); }
        default: { return v; }
    }
}

fn bias_of(co: u32) -> f32 {
    if (HAS_BIAS) {
        return bias[co];
    }
    return 0.0;
}

// v already includes the bias. pix = oy * wo + ox; co counts all C_out channels (not within the group).
fn store(n: u32, co: u32, pix: u32, v: f32) {
    let hw = p.ho * p.wo;
    var s = v;
    if (HAS_RES) {
        s += f32(res[(n * p.c_out + co) * hw + pix]);
    }
    out[(n * p.c_total + p.c_off + co) * hw + pix] = Map(act(s));
}

// GEMM tiling: 64 threads as TMT (channels) x TNT (pixels), each accumulating 8 consecutive channels x
// 8 consecutive pixels, so a workgroup computes TM x TN = 8·TMT x 8·TNT outputs. TMT is 2, 4 or 8: small
// C_out (detection heads) takes narrow, wide tiles instead of wasting most of a 64-channel tile.
// Workgroup memory holds vec4s, so the inner loop does 4 loads per 64 FMAs: lavapipe pays per load
// (a scalar loop over its SIMD lanes), GPUs get 128-bit shared loads.
override TMT: u32 = 8u;
// Derived; the host sets only TMT. TK (GEMM depth per barrier) keeps workgroup memory at 16 KiB.
override TNT: u32 = 64u / TMT;
override TK: u32 = 256u / max(TMT, TNT);
var<workgroup> sa: array<vec4<f32>, TK * 2u * TMT>; // [TK][TM / 4] weights, 4 channels per vec4
var<workgroup> sb: array<vec4<f32>, TK * 2u * TNT>; // [TK][TN / 4] im2col patch, 4 pixels per vec4

// One GEMM depth step: thread (tx, ty) adds channels 8ty.. x pixels 8tx.. from row kk of the tiles.
fn mac(acc: ptr<function, array<vec4<f32>, 16>>, kk: u32, tx: u32, ty: u32) {
    let a0 = sa[(kk * TMT + ty) * 2u];
    let a1 = sa[(kk * TMT + ty) * 2u + 1u];
    let b0 = sb[(kk * TNT + tx) * 2u];
    let b1 = sb[(kk * TNT + tx) * 2u + 1u];
    (*acc)[0] += a0.x * b0;
    (*acc)[1] += a0.x * b1;
    (*acc)[2] += a0.y * b0;
    (*acc)[3] += a0.y * b1;
    (*acc)[4] += a0.z * b0;
    (*acc)[5] += a0.z * b1;
    (*acc)[6] += a0.w * b0;
    (*acc)[7] += a0.w * b1;
    (*acc)[8] += a1.x * b0;
    (*acc)[9] += a1.x * b1;
    (*acc)[10] += a1.y * b0;
    (*acc)[11] += a1.y * b1;
    (*acc)[12] += a1.z * b0;
    (*acc)[13] += a1.z * b1;
    (*acc)[14] += a1.w * b0;
    (*acc)[15] += a1.w * b1;
}

// One output tile. GEMM: M = C_out/groups, N = pixels of all images, K = C_in/groups*KH*KW.
// `pointwise` is a literal at each call, so drivers fold it after inlining.
fn gemm_tile(lid: u32, tile: u32, wy: u32, pointwise: bool) {
    let grp = wy / p.m_tiles;
    let m0 = (wy % p.m_tiles) * 8u * TMT;
    let p0 = tile * 8u * TNT;
    let hw = p.ho * p.wo;
    let khw = p.kh * p.kw;

    // Patch staging: this thread always fills pixel quad bq (64 is a multiple of 2·TNT) at rows
    // brow + step·i, so its 4 pixels are decoded once, not per k.
    let bq = lid % (2u * TNT);
    let brow = lid / (2u * TNT);
    let bstep = 32u / TNT;
    var pvalid: vec4<bool>;
    var xbase: vec4<u32>;
    var bpix: vec4<u32>;
    var iy0: vec4<i32>;
    var ix0: vec4<i32>;
    for (var j = 0u; j < 4u; j++) {
        let pp = p0 + 4u * bq + j;
        pvalid[j] = pp < p.p_total;
        let pix = pp % hw;
        bpix[j] = pix;
        xbase[j] = ((pp / hw) * p.c_in + grp * p.cin_g) * p.h * p.w;
        iy0[j] = i32((pix / p.wo) * p.sy) - i32(p.pt);
        ix0[j] = i32((pix % p.wo) * p.sx) - i32(p.pl);
    }
    let wrow0 = grp * p.cout_g + m0;
    // Compute: thread (tx, ty) owns channels 8ty.. and pixels 8tx.. of the tile.
    let tx = lid % TNT;
    let ty = lid / TNT;

    // acc[2i + h]: channel 8ty + i, pixels 8tx + 4h ..
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // Weight quads; consecutive threads read consecutive k of one row (coalesced).
        for (var q = lid; q < TK * 2u * TMT; q += 64u) {
            let kk = q % TK;
            let mq = q / TK;
            let ka = k0 + kk;
            var v = vec4<f32>(0.0);
            for (var c = 0u; c < 4u; c++) {
                if (ka < p.k && m0 + 4u * mq + c < p.cout_g) {
                    v[c] = f32(wt[(wrow0 + 4u * mq + c) * p.k + ka]);
                }
            }
            sa[kk * 2u * TMT + mq] = v;
        }
        for (var kk = brow; kk < TK; kk += bstep) {
            let kb = k0 + kk;
            var v = vec4<f32>(0.0);
            if (kb < p.k) {
                if (pointwise) {
                    for (var j = 0u; j < 4u; j++) {
                        if (pvalid[j]) {
                            v[j] = f32(x[xbase[j] + kb * hw + bpix[j]]);
                        }
                    }
                } else {
                    let ci = kb / khw;
                    let r = kb % khw;
                    let iy = iy0 + vec4<i32>(i32((r / p.kw) * p.dy));
                    let ix = ix0 + vec4<i32>(i32((r % p.kw) * p.dx));
                    let ok = pvalid & (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(p.h)))
                        & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(i32(p.w)));
                    for (var j = 0u; j < 4u; j++) {
                        if (ok[j]) {
                            v[j] = f32(x[xbase[j] + (ci * p.h + u32(iy[j])) * p.w + u32(ix[j])]);
                        }
                    }
                }
            }
            sb[kk * 2u * TNT + bq] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            mac(&acc, kk, tx, ty);
        }
        workgroupBarrier();
    }

    // Output offsets of this thread's 8 pixels, found with one division instead of two per element:
    // lavapipe scalarises vector integer division.
    let pp0 = p0 + 8u * tx;
    if (pp0 >= p.p_total) {
        return;
    }
    let np = min(8u, p.p_total - pp0);
    var img = pp0 / hw;
    var pix = pp0 % hw;
    var ob: array<u32, 8>; // [N, C_total, Ho, Wo] offset of (img, c_off, pix)
    var rb: array<u32, 8>; // [N, C_out, Ho, Wo] offset of (img, 0, pix)
    for (var j = 0u; j < 8u; j++) {
        ob[j] = (img * p.c_total + p.c_off) * hw + pix;
        rb[j] = img * p.c_out * hw + pix;
        pix += 1u;
        if (pix == hw) {
            pix = 0u;
            img += 1u;
        }
    }
    for (var i = 0u; i < 8u; i++) {
        let m = m0 + 8u * ty + i;
        if (m >= p.cout_g) {
            break;
        }
        let co = grp * p.cout_g + m;
        let b = bias_of(co);
        for (var j = 0u; j < np; j++) {
            var s = acc[2u * i + j / 4u][j % 4u] + b;
            if (HAS_RES) {
                s += f32(res[rb[j] + co * hw]);
            }
            out[ob[j] + co * hw] = Map(act(s));
        }
    }
}

// Workgroups: pixel tiles over x, wrapping into z beyond the launcher's MAX_TILES_X; y = groups * m_tiles.
@compute @workgroup_size(64)
fn conv2d(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let tile = wid.x + wid.z * nwg.x;
    if (tile * 8u * TNT >= p.p_total) {
        return;
    }
    gemm_tile(lid, tile, wid.y, false);
}

@compute @workgroup_size(64)
fn conv2d_1x1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let tile = wid.x + wid.z * nwg.x;
    if (tile * 8u * TNT >= p.p_total) {
        return;
    }
    gemm_tile(lid, tile, wid.y, true);
}

// 1x1 / stride 1 / pad 0 without workgroup memory: a thread computes 4 consecutive pixels x PW_M
// channels, reading each input once and the weights at indices uniform across the workgroup (lavapipe
// then loads them once per SIMD group, where the GEMM's per-lane workgroup-memory loads dominate).
const PW_M: u32 = 16u;
@compute @workgroup_size(64)
fn conv2d_1x1_direct(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let pp0 = ((wid.x + wid.z * nwg.x) * 64u + lid) * 4u;
    if (pp0 >= p.p_total) {
        return;
    }
    let grp = wid.y / p.m_tiles;
    let m0 = (wid.y % p.m_tiles) * PW_M;
    let mn = min(PW_M, p.cout_g - m0);
    let hw = p.ho * p.wo;
    var ok: vec4<bool>;
    var xb: vec4<u32>;
    var img: vec4<u32>;
    var pix: vec4<u32>;
    for (var j = 0u; j < 4u; j++) {
        let pp = pp0 + j;
        ok[j] = pp < p.p_total;
        img[j] = pp / hw;
        pix[j] = pp % hw;
        xb[j] = (img[j] * p.c_in + grp * p.cin_g) * hw + pix[j];
    }
    let wrow = (grp * p.cout_g + m0) * p.k;
    var acc: array<vec4<f32>, PW_M>;
    for (var k = 0u; k < p.k; k++) {
        var v = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            if (ok[j]) {
                v[j] = f32(x[xb[j] + k * hw]);
            }
        }
        for (var m = 0u; m < PW_M; m++) {
            // Rows past C_out/groups repeat the last one (in bounds, never stored).
            acc[m] += f32(wt[wrow + min(m, mn - 1u) * p.k + k]) * v;
        }
    }
    for (var m = 0u; m < mn; m++) {
        let co = grp * p.cout_g + m0 + m;
        let b = bias_of(co);
        for (var j = 0u; j < 4u; j++) {
            if (ok[j]) {
                store(img[j], co, pix[j], acc[m][j] + b);
            }
        }
    }
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
            let wv = f32(wt[(co * p.kh + ky) * p.kw + kx]);
            let ix = ix0 + i32(kx * p.dx);
            for (var j = 0u; j < 4u; j++) {
                if (ix[j] >= 0 && ix[j] < i32(p.w)) {
                    acc[j] += wv * f32(x[row + u32(ix[j])]);
                }
            }
        }
    }
    let pix = oy * p.wo + ox0;
    let b = bias_of(co);
    for (var j = 0u; j < 4u; j++) {
        if (ox0 + j < p.wo) {
            store(n, co, pix + j, acc[j] + b);
        }
    }
}

// Depthwise 3x3, dilation 1, stride DW_S (1 or 2) in both axes: each thread computes DW_X consecutive
// outputs of a row. The input row segment under them, (DW_X-1)*DW_S + 3 wide, is loaded into registers
// once per kernel row, so each input is read once per thread instead of up to 3 times per output; a
// thread whose segment lies inside the row skips the bounds checks.
override DW_S: u32 = 1u;
const DW_X: u32 = 8u;
const DW_SEG: u32 = 17u; // (DW_X - 1) * 2 + 3, the widest segment (stride 2)
@compute @workgroup_size(WG)
fn conv2d_dw3(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let strips = (p.wo + DW_X - 1u) / DW_X;
    if (i >= p.n * p.c_out * p.ho * strips) {
        return;
    }
    let ox0 = (i % strips) * DW_X;
    let t = i / strips;
    let oy = t % p.ho;
    let t2 = t / p.ho;
    let co = t2 % p.c_out;
    let n = t2 / p.c_out;
    let xbase = (n * p.c_in + co / p.cout_g) * p.h * p.w;
    let seg = (DW_X - 1u) * DW_S + 3u;
    let ix0 = i32(ox0 * DW_S) - i32(p.pl);
    let inside = ix0 >= 0 && ix0 + i32(seg) <= i32(p.w);
    var acc: array<f32, DW_X>;
    for (var ky = 0u; ky < 3u; ky++) {
        let iy = i32(oy * DW_S + ky) - i32(p.pt);
        if (iy < 0 || iy >= i32(p.h)) {
            continue;
        }
        let row = xbase + u32(iy) * p.w;
        var r: array<f32, DW_SEG>;
        if (inside) {
            for (var j = 0u; j < seg; j++) {
                r[j] = f32(x[row + u32(ix0) + j]);
            }
        } else {
            for (var j = 0u; j < seg; j++) {
                let ix = ix0 + i32(j);
                if (ix >= 0 && ix < i32(p.w)) {
                    r[j] = f32(x[row + u32(ix)]);
                }
            }
        }
        let w0 = f32(wt[co * 9u + ky * 3u]);
        let w1 = f32(wt[co * 9u + ky * 3u + 1u]);
        let w2 = f32(wt[co * 9u + ky * 3u + 2u]);
        for (var o = 0u; o < DW_X; o++) {
            acc[o] += w0 * r[o * DW_S] + w1 * r[o * DW_S + 1u] + w2 * r[o * DW_S + 2u];
        }
    }
    let pix = oy * p.wo + ox0;
    let b = bias_of(co);
    for (var o = 0u; o < DW_X; o++) {
        if (ox0 + o < p.wo) {
            store(n, co, pix + o, acc[o] + b);
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
                    acc += f32(wt[((co * p.cin_g + ci) * p.kh + ky) * p.kw + kx])
                        * f32(x[xbase + u32(iy) * p.w + u32(ix)]);
                }
            }
        }
    }
    store(n, co, pix, acc + bias_of(co));
}
