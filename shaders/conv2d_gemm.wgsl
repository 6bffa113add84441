// 2-D convolution as a register-tiled implicit GEMM with 256 threads: the wide fp32 tier of conv2d.
// Same maps, weights, Params and fused epilogue as conv2d.wgsl:
// out = act(conv(x) + bias + residual), written at channels c_off.. of a possibly larger output.
//
// GEMM: M = C_out/groups (weight rows), N = pixels of all images, K = C_in/groups·KH·KW (im2col on the
// fly). 256 threads form TM (channels) x TN (pixels); each accumulates RM x RN outputs, so a workgroup
// computes BM x BN = TM·RM x TN·RN (128x128 for wide layers; src/ops/conv2d_gemm.rs has the table).
// BK = 1024 / BN keeps one patch quad (4 pixels of one K row) per thread and slice, and at most one
// weight quad (4 channels of one K row) since BM <= BN.
//
// Weights come packed k-major, [groups, kp, mp] (src/ops/pack_kmajor.rs, once per weight): a slice of a
// tile is BK runs of BM channels, loaded with one aligned vec4 per thread straight into the workgroup
// layout. The packing pads channels and depths with zeros to multiples of every tile, so weight loads
// need no bounds checks.
//
// Two stages of workgroup memory: while the threads multiply slice s from one stage, their loads of
// slice s+1 are already in flight into registers, and go to the other stage afterwards; one barrier
// per slice. A thread's RM channels are RM/4 runs of 4 spaced TM·4 apart (likewise its pixels, TN·4
// apart), so the vec4 workgroup loads of neighbouring threads are contiguous (no bank conflicts).
//
// Entries: conv2d_gemm (any conv; scalar loads of the patch) and conv2d_gemm_v4 (1x1, stride 1, no
// padding, Ho·Wo a multiple of 4: vec4 loads of the patch). One entry cannot read a binding under two types, so each entry has its own short slice
// loop over the shared helpers.
//
// Storage element type of feature maps and weights; build.rs generates the f16 variant
// (conv2d_gemm_f16.wgsl) in which Map is f16. Arithmetic is f32 in both.
alias Map = f32;

override ACT: u32 = 0u;      // 0 none, 1 ReLU, 2 ReLU6, 3 LeakyReLU(ALPHA)
override ALPHA: f32 = 0.1;
override HAS_BIAS: bool = false;
override HAS_RES: bool = false;
override TM: u32 = 16u;      // threads along channels: 4, 8 or 16
override RM: u32 = 8u;       // channels per thread: 4 or 8
override RN: u32 = 8u;       // pixels per thread: 4 or 8
// Derived; the host sets only TM, RM and RN.
override TN: u32 = 256u / TM;
override BM: u32 = TM * RM;
override BN: u32 = TN * RN;
override BK: u32 = 1024u / BN;

struct Params {
    n: u32, c_in: u32, h: u32, w: u32,
    c_out: u32, ho: u32, wo: u32, c_total: u32,
    c_off: u32, kh: u32, kw: u32, sy: u32,
    sx: u32, pt: u32, pl: u32, dy: u32,
    dx: u32, cin_g: u32, cout_g: u32, k: u32,      // k = cin_g * kh * kw, the GEMM depth
    p_total: u32, m_tiles: u32, kp: u32, mp: u32,  // p_total = n * ho * wo; m_tiles per group; packed weights [groups, kp, mp]
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<Map>;          // [N, C_in, H, W]
@group(0) @binding(1) var<storage, read> x4: array<vec4<Map>>;   // the same in conv2d_gemm_v4 (H·W = 4n)
@group(0) @binding(2) var<storage, read> res: array<Map>;        // [N, C_out, Ho, Wo]; x again when !HAS_RES
@group(0) @binding(3) var<storage, read> wt4: array<vec4<Map>>;  // [groups, kp, mp] packed (mp = 4n)
@group(0) @binding(4) var<storage, read> bias: array<f32>;       // [C_out], f32 at every precision; the weights again when !HAS_BIAS
@group(0) @binding(5) var<storage, read_write> out: array<Map>;  // [N, C_total, Ho, Wo]

// [stage][BK][BM / 4] weights and [stage][BK][BN / 4] patch, 4 channels or pixels per vec4. f32 for any
// Map: the FMAs read them as f32. At most 16 KiB (WebGPU's default limit) for every tile of the table.
var<workgroup> sa: array<vec4<f32>, 2u * BK * BM / 4u>;
var<workgroup> sb: array<vec4<f32>, 2u * BK * BN / 4u>;

fn act(v: f32) -> f32 {
    switch ACT {
        case 1u: { return max(v, 0.0); }
        case 2u: { return min(max(v, 0.0), 6.0); }
        case 3u: { return select(ALPHA * v, v, v >= 0.0); }
        default: { return v; }
    }
}

struct Tile {
    grp: u32,
    m0: u32,    // first channel of the tile within its group
    p0: u32,    // first pixel of the tile, counting over all images
}

// Workgroups: pixel tiles over x, wrapping into z beyond the launcher's MAX_TILES_X; y = groups * m_tiles.
fn tile_of(wid: vec3<u32>, nwg: vec3<u32>) -> Tile {
    let grp = wid.y / p.m_tiles;
    let m0 = (wid.y % p.m_tiles) * BM;
    return Tile(grp, m0, (wid.x + wid.z * nwg.x) * BN);
}

// The 4 pixels this thread stages in every slice (p0 + 4·(lid % (BN/4)) ..), decoded once.
struct Quad {
    ok: vec4<bool>,
    xbase: vec4<u32>, // [N, C_in, H, W] offset of (image, first channel of the group, 0, 0)
    pix: vec4<u32>,   // oy * wo + ox
    iy0: vec4<i32>,   // input row and column under kernel tap (0, 0)
    ix0: vec4<i32>,
}

fn quad_of(t: Tile, lid: u32) -> Quad {
    let hw = p.ho * p.wo;
    var q: Quad;
    for (var j = 0u; j < 4u; j++) {
        let pp = t.p0 + 4u * (lid % (BN / 4u)) + j;
        q.ok[j] = pp < p.p_total;
        let pix = pp % hw;
        q.pix[j] = pix;
        q.xbase[j] = ((pp / hw) * p.c_in + t.grp * p.cin_g) * p.h * p.w;
        q.iy0[j] = i32((pix / p.wo) * p.sy) - i32(p.pt);
        q.ix0[j] = i32((pix % p.wo) * p.sx) - i32(p.pl);
    }
    return q;
}

// Weight quad of this thread: channels m0 + 4·(lid % (BM/4)) .. at depth k0 + lid / (BM/4), so that
// consecutive threads read consecutive 16 bytes. In bounds of the packing for every slice (kp and mp are
// multiples of BK and BM); threads lid >= BK·BM/4 load nothing (stage() skips them).
fn fetch_a(t: Tile, lid: u32, k0: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (lid < BK * BM / 4u) {
        let kk = k0 + lid / (BM / 4u);
        v = vec4<f32>(wt4[((t.grp * p.kp + kk) * p.mp + t.m0) / 4u + lid % (BM / 4u)]);
    }
    return v;
}

// Patch quad of this thread: its 4 pixels at depth k0 + lid / (BN/4), zero where the kernel tap falls
// into the padding or past the last pixel.
fn fetch_b(q: Quad, lid: u32, k0: u32) -> vec4<f32> {
    let kb = k0 + lid / (BN / 4u);
    var v = vec4<f32>(0.0);
    if (kb < p.k) {
        let khw = p.kh * p.kw;
        let ci = kb / khw;
        let r = kb % khw;
        let iy = q.iy0 + vec4<i32>(i32((r / p.kw) * p.dy));
        let ix = q.ix0 + vec4<i32>(i32((r % p.kw) * p.dx));
        let ok = q.ok & (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(p.h)))
            & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(i32(p.w)));
        for (var j = 0u; j < 4u; j++) {
            if (ok[j]) {
                v[j] = f32(x[q.xbase[j] + (ci * p.h + u32(iy[j])) * p.w + u32(ix[j])]);
            }
        }
    }
    return v;
}

// fetch_b for 1x1 / stride 1 / no padding with Ho·Wo a multiple of 4: the 4 pixels are one aligned vec4
// of one image (all valid or none).
fn fetch_b4(q: Quad, lid: u32, k0: u32) -> vec4<f32> {
    let kb = k0 + lid / (BN / 4u);
    var v = vec4<f32>(0.0);
    if (kb < p.k && q.ok.x) {
        v = vec4<f32>(x4[(q.xbase.x + kb * p.h * p.w + q.pix.x) / 4u]);
    }
    return v;
}

// Writes the fetched quads into stage s, both as loaded: [k][m / 4] and [k][pixel / 4] (indices lid, since
// the packed slice is [BK][BM/4] and BK·BN/4 = 256).
fn stage(s: u32, lid: u32, a: vec4<f32>, b: vec4<f32>) {
    if (lid < BK * BM / 4u) {
        sa[s * BK * (BM / 4u) + lid] = a;
    }
    sb[s * BK * (BN / 4u) + lid] = b;
}

// acc[2i + g]: this thread's channel row i (run i/4, lane i%4) x pixel run g.
alias Acc = array<vec4<f32>, 16>;

// Adds the outer product of a (4 channels) and b (4 pixels) to rows at/2 .. at/2 + 3 of column run at % 2.
// Written out with literal indices (not loops over RM and RN) so that drivers keep acc in registers.
fn mac4(acc: ptr<function, Acc>, at: u32, a: vec4<f32>, b: vec4<f32>) {
    (*acc)[at] += a.x * b;
    (*acc)[at + 2u] += a.y * b;
    (*acc)[at + 4u] += a.z * b;
    (*acc)[at + 6u] += a.w * b;
}

// The BK GEMM steps of stage s: RM/4 + RN/4 vec4 loads per RM·RN FMAs. The RM == 8 and RN == 8 tests
// are on override constants: drivers drop the dead branches.
fn mac(acc: ptr<function, Acc>, s: u32, lid: u32) {
    let abase = s * BK * (BM / 4u) + lid / TN;
    let bbase = s * BK * (BN / 4u) + lid % TN;
    for (var kk = 0u; kk < BK; kk++) {
        let a0 = sa[abase + kk * (BM / 4u)];
        let b0 = sb[bbase + kk * (BN / 4u)];
        mac4(acc, 0u, a0, b0);
        if (RN == 8u) {
            let b1 = sb[bbase + kk * (BN / 4u) + TN];
            mac4(acc, 1u, a0, b1);
            if (RM == 8u) {
                let a1 = sa[abase + kk * (BM / 4u) + TM];
                mac4(acc, 8u, a1, b0);
                mac4(acc, 9u, a1, b1);
            }
        } else if (RM == 8u) {
            let a1 = sa[abase + kk * (BM / 4u) + TM];
            mac4(acc, 8u, a1, b0);
        }
    }
}

// Stores a 4x4 block: v[i][j] is channel m + i (within the group) at pixel pp0 + j.
fn emit(t: Tile, m: u32, pp0: u32, v: array<vec4<f32>, 4>) {
    if (pp0 >= p.p_total) {
        return;
    }
    let hw = p.ho * p.wo;
    let np = min(4u, p.p_total - pp0);
    // Offsets of the 4 pixels with one division: a quad may span two images.
    var img = pp0 / hw;
    var pix = pp0 % hw;
    var ob: vec4<u32>; // [N, C_total, Ho, Wo] offset of (img, c_off, pix)
    var rb: vec4<u32>; // [N, C_out, Ho, Wo] offset of (img, 0, pix)
    for (var j = 0u; j < 4u; j++) {
        ob[j] = (img * p.c_total + p.c_off) * hw + pix;
        rb[j] = img * p.c_out * hw + pix;
        pix += 1u;
        if (pix == hw) {
            pix = 0u;
            img += 1u;
        }
    }
    for (var i = 0u; i < 4u; i++) {
        if (m + i >= p.cout_g) {
            break;
        }
        let co = t.grp * p.cout_g + m + i;
        var b = 0.0;
        if (HAS_BIAS) {
            b = f32(bias[co]);
        }
        for (var j = 0u; j < np; j++) {
            var s = v[i][j] + b;
            if (HAS_RES) {
                s += f32(res[rb[j] + co * hw]);
            }
            out[ob[j] + co * hw] = Map(act(s));
        }
    }
}

// The thread's RM/4 x RN/4 blocks of 4x4, with literal acc indices like mac.
fn epilogue(acc: ptr<function, Acc>, t: Tile, lid: u32) {
    let m0 = t.m0 + 4u * (lid / TN);
    let m1 = m0 + 4u * TM;
    let q0 = t.p0 + 4u * (lid % TN);
    let q1 = q0 + 4u * TN;
    emit(t, m0, q0, array((*acc)[0], (*acc)[2], (*acc)[4], (*acc)[6]));
    if (RN == 8u) {
        emit(t, m0, q1, array((*acc)[1], (*acc)[3], (*acc)[5], (*acc)[7]));
    }
    if (RM == 8u) {
        emit(t, m1, q0, array((*acc)[8], (*acc)[10], (*acc)[12], (*acc)[14]));
        if (RN == 8u) {
            emit(t, m1, q1, array((*acc)[9], (*acc)[11], (*acc)[13], (*acc)[15]));
        }
    }
}

@compute @workgroup_size(256)
fn conv2d_gemm(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = tile_of(wid, nwg);
    if (t.p0 >= p.p_total) {
        return;
    }
    let q = quad_of(t, lid);
    var acc: Acc;
    let slices = (p.k + BK - 1u) / BK;
    stage(0u, lid, fetch_a(t, lid, 0u), fetch_b(q, lid, 0u));
    workgroupBarrier();
    for (var s = 0u; s < slices; s++) {
        let more = s + 1u < slices;
        var a: vec4<f32>;
        var b: vec4<f32>;
        if (more) {
            a = fetch_a(t, lid, (s + 1u) * BK);
            b = fetch_b(q, lid, (s + 1u) * BK);
        }
        mac(&acc, s % 2u, lid);
        if (more) {
            stage((s + 1u) % 2u, lid, a, b);
        }
        workgroupBarrier();
    }
    epilogue(&acc, t, lid);
}

@compute @workgroup_size(256)
fn conv2d_gemm_v4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = tile_of(wid, nwg);
    if (t.p0 >= p.p_total) {
        return;
    }
    let q = quad_of(t, lid);
    var acc: Acc;
    let slices = (p.k + BK - 1u) / BK;
    stage(0u, lid, fetch_a(t, lid, 0u), fetch_b4(q, lid, 0u));
    workgroupBarrier();
    for (var s = 0u; s < slices; s++) {
        let more = s + 1u < slices;
        var a: vec4<f32>;
        var b: vec4<f32>;
        if (more) {
            a = fetch_a(t, lid, (s + 1u) * BK);
            b = fetch_b4(q, lid, (s + 1u) * BK);
        }
        mac(&acc, s % 2u, lid);
        if (more) {
            stage((s + 1u) % 2u, lid, a, b);
        }
        workgroupBarrier();
    }
    epilogue(&acc, t, lid);
}
