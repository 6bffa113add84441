// 2-D convolution as an implicit GEMM on cooperative matrices (tensor cores): f16 operands, f32
// accumulators. Same maps, weights, epilogue and Params as conv2d.wgsl:
// out = act(conv(x) + bias + residual), written at channels c_off.. of a possibly larger output.
//
// conv2d_coop8.wgsl and conv2d_coop16.wgsl are one kernel in two matrix sizes (a size is a type in WGSL,
// so it cannot be an override constant); tests/shaders_valid.rs checks that the 16 file is this file
// with every 8 of the matrix size replaced by 16.
//
// GEMM: M = C_out/groups (rows of A = weights), N = pixels of all images, K = C_in/groups·KH·KW.
// A workgroup of 4 subgroups computes a BM x BN = 4S x 4S tile; subgroup s owns the 2S x 2S quadrant
// (s / 2, s % 2) as 2 x 2 accumulators. Feature maps and weights are Map in memory; each K slice of both
// operands is rounded to f16 while it is staged in workgroup memory, so the matrices load from there.
// Weights come packed k-major, [groups, kp, mp] (src/ops/pack_kmajor.rs, once per weight; kp and mp are
// multiples of BK and BM): a slice is BK runs of BM channels, staged without bounds checks as the [BK][BM]
// array that the A matrices load column-major.
// The matrices have no per-element access, so the epilogue goes through workgroup memory as well.
enable f16;
enable wgpu_cooperative_matrix;

alias MatA = coop_mat8x8<f16, A>;
alias MatB = coop_mat8x8<f16, B>;
alias MatC = coop_mat8x8<f32, C>;
const S: u32 = 8u;

override ACT: u32 = 0u;      // 0 none, 1 ReLU, 2 ReLU6, 3 LeakyReLU(ALPHA)
override ALPHA: f32 = 0.1;
override HAS_BIAS: bool = false;
override HAS_RES: bool = false;
// The adapter's largest and smallest subgroup sizes. The workgroup is 4 of the largest subgroups. Naga
// wants cooperative operations in workgroup-uniform control flow, so where a device runs smaller
// subgroups, those past the 4th repeat the work of subgroup `sg % 4` and store the same values.
override SG: u32 = 32u;
override SG_MIN: u32 = SG;

const BM: u32 = 4u * S;      // output channels per workgroup
const BN: u32 = 4u * S;      // output pixels per workgroup
const BK: u32 = 2u * S;      // GEMM depth per staged slice
override WG: u32 = 4u * SG;

// Element type of the feature maps this shader reads or writes; build.rs generates the f16 variant
// (<name>_f16.wgsl) in which Map is f16. Arithmetic is f32 in both.
alias Map = f32;

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
@group(0) @binding(2) var<storage, read> res: array<Map>;        // [N, C_out, Ho, Wo]; x again when !HAS_RES
@group(0) @binding(3) var<storage, read> wt: array<Map>;         // [groups, kp, mp] packed
@group(0) @binding(4) var<storage, read> bias: array<f32>;       // [C_out]; wt again when !HAS_BIAS
@group(0) @binding(5) var<storage, read_write> out: array<Map>;  // [N, C_total, Ho, Wo]

var<workgroup> sa: array<f16, BK * BM>;     // [BK][BM] weights: A column-major
var<workgroup> sb: array<f16, BK * BN>;     // [BK][BN] im2col patch, row-major
var<workgroup> sc: array<f32, WG / SG_MIN * S * S>; // one S x S accumulator per subgroup, row-major

fn act(v: f32) -> f32 {
    switch ACT {
        case 1u: { return max(v, 0.0); }
        case 2u: { return min(max(v, 0.0), 6.0); }
        case 3u: { return select(ALPHA * v, v, v >= 0.0); }
        default: { return v; }
    }
}

// Writes accumulator `acc` of subgroup `sg`: rows m0.. (channels within the group) x columns p0..
// (pixels). Called by every invocation in workgroup-uniform control flow.
fn emit(acc: MatC, sg: u32, lane: u32, lanes: u32, grp: u32, m0: u32, p0: u32) {
    let base = sg * S * S;
    // naga's SPIR-V writer needs each argument of coopStore bound to a `let`.
    let m = acc;
    let at = base;
    let stride = S;
    coopStoreT(m, &sc[at], stride);
    workgroupBarrier();
    {
        let hw = p.ho * p.wo;
        for (var i = lane; i < S * S; i += lanes) {
            let mm = m0 + i / S;
            let pp = p0 + i % S;
            if (mm < p.cout_g && pp < p.p_total) {
                let co = grp * p.cout_g + mm;
                let img = pp / hw;
                let pix = pp % hw;
                var s = sc[base + i];
                if (HAS_BIAS) {
                    s += bias[co];
                }
                if (HAS_RES) {
                    s += f32(res[(img * p.c_out + co) * hw + pix]);
                }
                out[(img * p.c_total + p.c_off + co) * hw + pix] = Map(act(s));
            }
        }
    }
    workgroupBarrier();
}

// Workgroups: pixel tiles over x, wrapping into z beyond the launcher's MAX_TILES_X; y = groups * m_tiles.
@compute @workgroup_size(WG)
fn conv2d_coop8(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_id) sg: u32,
               @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) lanes: u32) {
    let tile = wid.x + wid.z * nwg.x;
    let p0 = tile * BN;
    if (p0 >= p.p_total) {
        return;
    }
    let grp = wid.y / p.m_tiles;
    let m0 = (wid.y % p.m_tiles) * BM;
    let hw = p.ho * p.wo;
    let khw = p.kh * p.kw;

    // Patch staging: this invocation always fills pixel column bn at rows brow, brow + WG/BN, ..., so
    // its pixel is decoded once. Consecutive invocations read consecutive pixels.
    let bn = lid % BN;
    let brow = lid / BN;
    let pp = p0 + bn;
    let pvalid = pp < p.p_total;
    let pix = pp % hw;
    let xbase = ((pp / hw) * p.c_in + grp * p.cin_g) * p.h * p.w;
    let iy0 = i32((pix / p.wo) * p.sy) - i32(p.pt);
    let ix0 = i32((pix % p.wo) * p.sx) - i32(p.pl);
    // Weight staging: channel am of depths akr, akr + WG/BM, ...; consecutive invocations read consecutive
    // channels of one packed run.
    let am = lid % BM;
    let akr = lid / BM;
    let wbase = grp * p.kp * p.mp + m0 + am;

    let q = sg % 4u;             // this subgroup's quadrant: first row and column within the tile
    let sm = (q / 2u) * 2u * S;
    let sn = (q % 2u) * 2u * S;
    var c00 = MatC();
    var c01 = MatC();
    var c10 = MatC();
    var c11 = MatC();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var r = akr; r < BK; r += WG / BM) {
            sa[r * BM + am] = f16(wt[wbase + (k0 + r) * p.mp]);
        }
        for (var r = brow; r < BK; r += WG / BN) {
            let kb = k0 + r;
            var v = 0.0;
            if (kb < p.k && pvalid) {
                let ci = kb / khw;
                let rr = kb % khw;
                let iy = iy0 + i32((rr / p.kw) * p.dy);
                let ix = ix0 + i32((rr % p.kw) * p.dx);
                if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                    v = f32(x[xbase + (ci * p.h + u32(iy)) * p.w + u32(ix)]);
                }
            }
            sb[r * BN + bn] = f16(v);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk += S) {
            let a0 = coopLoad<MatA>(&sa[kk * BM + sm], BM);
            let a1 = coopLoad<MatA>(&sa[kk * BM + sm + S], BM);
            let b0 = coopLoadT<MatB>(&sb[kk * BN + sn], BN);
            let b1 = coopLoadT<MatB>(&sb[kk * BN + sn + S], BN);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
        }
        workgroupBarrier();
    }
    emit(c00, sg, lane, lanes, grp, m0 + sm, p0 + sn);
    emit(c01, sg, lane, lanes, grp, m0 + sm, p0 + sn + S);
    emit(c10, sg, lane, lanes, grp, m0 + sm + S, p0 + sn);
    emit(c11, sg, lane, lanes, grp, m0 + sm + S, p0 + sn + S);
}
