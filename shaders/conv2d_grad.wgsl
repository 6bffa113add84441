// Backward of conv2d.wgsl (cross-correlation of NCHW f32 maps with OIHW weights), as tiled GEMMs:
//   conv2d_grad             input gradient dx = conv^T(dy, w): per group, M = C_in/groups channels,
//                           N = N·H·W input pixels, K = C_out/groups·KH·KW (a transposed conv: the (oy, ox)
//                           an input pixel meets through (ky, kx) must be on the stride grid and in range)
//   conv2d_grad_weight      weight and bias gradient partial sums: per group and split, M = C_out/groups,
//                           N = C_in/groups·KH·KW + 1 columns (the last is a column of ones, so it sums dy:
//                           the bias gradient), K = the split's chunk of the N·Ho·Wo output pixels
//   conv2d_grad_weight_sum  sums the splits (in split order, so results do not depend on scheduling) into
//                           dw and db, adding to them with ACCUM (gradient accumulation over iterations)
// Tiles are 64x64 outputs per 256-thread workgroup, 4x4 per thread, depth TK per barrier.
override ACCUM: bool = false;

struct Params {
    n: u32, c_in: u32, h: u32, w: u32,
    c_out: u32, ho: u32, wo: u32, kh: u32,
    kw: u32, sy: u32, sx: u32, pt: u32,
    pl: u32, dy: u32, dx: u32, cin_g: u32,
    cout_g: u32, k_fwd: u32, chunk: u32, m_tiles: u32, // k_fwd = cin_g·kh·kw; chunk: pixels per split
    splits: u32, dy_c: u32, dy_off: u32, _p0: u32, // dy: channels dy_off.. of a [N, dy_c, Ho, Wo] tensor
}

@group(0) @binding(0) var<uniform> p: Params;
// conv2d_grad
@group(0) @binding(1) var<storage, read> gy: array<f32>;              // dy [N, dy_c, Ho, Wo]
@group(0) @binding(2) var<storage, read> wt: array<f32>;              // [C_out, C_in / groups, KH, KW]
@group(0) @binding(3) var<storage, read_write> gx: array<f32>;        // dx [N, C_in, H, W]
// conv2d_grad_weight
@group(0) @binding(1) var<storage, read> x: array<f32>;               // [N, C_in, H, W]
@group(0) @binding(2) var<storage, read> gy_w: array<f32>;            // dy [N, dy_c, Ho, Wo]
@group(0) @binding(3) var<storage, read_write> part: array<f32>;      // [splits, C_out, k_fwd + 1]
// conv2d_grad_weight_sum
@group(0) @binding(1) var<storage, read> part_in: array<f32>;         // [splits, C_out, k_fwd + 1]
@group(0) @binding(2) var<storage, read_write> gw: array<f32>;        // dw [C_out, C_in / groups, KH, KW]
@group(0) @binding(3) var<storage, read_write> gb: array<f32>;        // db [C_out]

const TK: u32 = 16u;
var<workgroup> sa: array<vec4<f32>, 256>; // [TK][16 quads of M]
var<workgroup> sb: array<vec4<f32>, 256>; // [TK][16 quads of N]

// Adds the staged TK-deep slab to the 4x4 outputs (rows 4ty.., columns 4tx..) of this thread.
fn accumulate(acc: ptr<function, array<vec4<f32>, 4>>, tx: u32, ty: u32) {
    for (var kk = 0u; kk < TK; kk++) {
        let a = sa[kk * 16u + ty];
        let b = sb[kk * 16u + tx];
        for (var i = 0u; i < 4u; i++) {
            (*acc)[i] += a[i] * b;
        }
    }
}

// Workgroups: x (+ z wrap) = 64-pixel tiles of the input, y = groups·m_tiles (64 input channels each).
@compute @workgroup_size(256)
fn conv2d_grad(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let hw = p.h * p.w;
    let total = p.n * hw;
    let q0 = (wid.x + wid.z * nwg.x) * 64u;
    if (q0 >= total) {
        return;
    }
    let grp = wid.y / p.m_tiles;
    let m0 = (wid.y % p.m_tiles) * 64u;
    let khw = p.kh * p.kw;
    let kdepth = p.cout_g * khw;
    let quad = lid % 16u;
    let row = lid / 16u;
    // The 4 input pixels this thread stages, decoded once.
    var ok: vec4<bool>;
    var ybase: vec4<u32>; // offset of (img, dy_off + grp·cout_g, 0, 0) in dy
    var iy: vec4<i32>;
    var ix: vec4<i32>;
    for (var j = 0u; j < 4u; j++) {
        let q = q0 + 4u * quad + j;
        ok[j] = q < total;
        let pix = q % hw;
        ybase[j] = ((q / hw) * p.dy_c + p.dy_off + grp * p.cout_g) * p.ho * p.wo;
        iy[j] = i32(pix / p.w) + i32(p.pt);
        ix[j] = i32(pix % p.w) + i32(p.pl);
    }
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < kdepth; k0 += TK) {
        let k = k0 + row;
        var a = vec4<f32>(0.0);
        var b = vec4<f32>(0.0);
        if (k < kdepth) {
            let co = k / khw;
            let r = k % khw;
            // A[k][m] = w[grp·cout_g + co, m, ky, kx]
            let wrow = (grp * p.cout_g + co) * p.cin_g;
            for (var c = 0u; c < 4u; c++) {
                let m = m0 + 4u * quad + c;
                if (m < p.cin_g) {
                    a[c] = wt[(wrow + m) * khw + r];
                }
            }
            // B[k][q] = dy[img, co, oy, ox] where oy·sy = iy + pt − ky·dy on the grid and in range.
            let ty = iy - vec4<i32>(i32((r / p.kw) * p.dy));
            let tx = ix - vec4<i32>(i32((r % p.kw) * p.dx));
            for (var j = 0u; j < 4u; j++) {
                if (ok[j] && ty[j] >= 0 && tx[j] >= 0 && u32(ty[j]) % p.sy == 0u && u32(tx[j]) % p.sx == 0u) {
                    let oy = u32(ty[j]) / p.sy;
                    let ox = u32(tx[j]) / p.sx;
                    if (oy < p.ho && ox < p.wo) {
                        b[j] = gy[ybase[j] + (co * p.ho + oy) * p.wo + ox];
                    }
                }
            }
        }
        sa[row * 16u + quad] = a;
        sb[row * 16u + quad] = b;
        workgroupBarrier();
        accumulate(&acc, lid % 16u, lid / 16u);
        workgroupBarrier();
    }
    let tx = lid % 16u;
    let ty = lid / 16u;
    for (var j = 0u; j < 4u; j++) {
        let q = q0 + 4u * tx + j;
        if (q >= total) {
            break;
        }
        let base = (q / hw) * p.c_in * hw + q % hw;
        for (var i = 0u; i < 4u; i++) {
            let m = m0 + 4u * ty + i;
            if (m < p.cin_g) {
                gx[base + (grp * p.cin_g + m) * hw] = acc[i][j];
            }
        }
    }
}

// Workgroups: x = 64-column tiles of k_fwd + 1, y = groups·m_tiles (64 output channels each), z = splits.
@compute @workgroup_size(256)
fn conv2d_grad_weight(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let cols = p.k_fwd + 1u;
    let j0 = wid.x * 64u;
    let grp = wid.y / p.m_tiles;
    let m0 = (wid.y % p.m_tiles) * 64u;
    let hwo = p.ho * p.wo;
    let total = p.n * hwo;
    let q_begin = wid.z * p.chunk;
    let q_end = min(q_begin + p.chunk, total);
    let khw = p.kh * p.kw;
    let quad = lid % 16u;
    let row = lid / 16u;
    // The 4 columns (ci, ky, kx) this thread stages, decoded once; column k_fwd is the bias's ones.
    var xoff: vec4<u32>; // offset of (0, grp·cin_g + ci, 0, 0) in x
    var ky: vec4<i32>;
    var kx: vec4<i32>;
    for (var c = 0u; c < 4u; c++) {
        let j = min(j0 + 4u * quad + c, p.k_fwd);
        let r = j % khw;
        xoff[c] = (grp * p.cin_g + j / khw) * p.h * p.w;
        ky[c] = i32((r / p.kw) * p.dy) - i32(p.pt);
        kx[c] = i32((r % p.kw) * p.dx) - i32(p.pl);
    }
    var acc: array<vec4<f32>, 4>;
    for (var k0 = q_begin; k0 < q_end; k0 += TK) {
        let q = k0 + row;
        var a = vec4<f32>(0.0);
        var b = vec4<f32>(0.0);
        if (q < q_end) {
            let img = q / hwo;
            let pix = q % hwo;
            // A[q][m] = dy[img, dy_off + grp·cout_g + m, pix]
            let ybase = (img * p.dy_c + p.dy_off + grp * p.cout_g) * hwo + pix;
            for (var c = 0u; c < 4u; c++) {
                let m = m0 + 4u * quad + c;
                if (m < p.cout_g) {
                    a[c] = gy_w[ybase + m * hwo];
                }
            }
            // B[q][j] = x[img, grp·cin_g + ci, oy·sy + ky·dy − pt, ox·sx + kx·dx − pl], 1 for j = k_fwd.
            let oy = i32((pix / p.wo) * p.sy);
            let ox = i32((pix % p.wo) * p.sx);
            let xb = img * p.c_in * p.h * p.w;
            for (var c = 0u; c < 4u; c++) {
                let j = j0 + 4u * quad + c;
                let yy = oy + ky[c];
                let xx = ox + kx[c];
                if (j == p.k_fwd) {
                    b[c] = 1.0;
                } else if (j < p.k_fwd && yy >= 0 && yy < i32(p.h) && xx >= 0 && xx < i32(p.w)) {
                    b[c] = x[xb + xoff[c] + u32(yy) * p.w + u32(xx)];
                }
            }
        }
        sa[row * 16u + quad] = a;
        sb[row * 16u + quad] = b;
        workgroupBarrier();
        accumulate(&acc, lid % 16u, lid / 16u);
        workgroupBarrier();
    }
    let tx = lid % 16u;
    let ty = lid / 16u;
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + 4u * ty + i;
        if (m >= p.cout_g) {
            break;
        }
        let base = (wid.z * p.c_out + grp * p.cout_g + m) * cols;
        for (var c = 0u; c < 4u; c++) {
            let j = j0 + 4u * tx + c;
            if (j < cols) {
                part[base + j] = acc[i][c];
            }
        }
    }
}

// One invocation per (output channel, column) of the partial sums: C_out·(k_fwd + 1), 1-D dispatch.
@compute @workgroup_size(256)
fn conv2d_grad_weight_sum(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let cols = p.k_fwd + 1u;
    let per_split = p.c_out * cols;
    if (i >= per_split) {
        return;
    }
    var s = 0.0;
    for (var k = 0u; k < p.splits; k++) {
        s += part_in[k * per_split + i];
    }
    let co = i / cols;
    let j = i % cols;
    if (j < p.k_fwd) {
        let o = co * p.k_fwd + j;
        if (ACCUM) {
            s += gw[o];
        }
        gw[o] = s;
    } else {
        if (ACCUM) {
            s += gb[co];
        }
        gb[co] = s;
    }
}
