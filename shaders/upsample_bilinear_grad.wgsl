// Backward of upsample_bilinear.wgsl (SSH's fixed bilinear ×2 deconvolution, cropped top-left to Ho×Wo):
// the transpose of its linear map. Per axis, input j fed outputs 2j−1 (0.25), 2j (0.75), 2j+1 (0.75) and
// 2j+2 (0.25), so dx[j] = 0.75·(d[2j] + d[2j+1]) + 0.25·(d[2j−1] + d[2j+2]) with d = 0 outside [0, Ho): the
// crop's backward is a zero pad of the dropped last row/column. Separable: the 2-D gradient sums the 4×4
// taps (outer product of the per-axis weights) whose output lies in the crop. One invocation per dx element
// gathers them, so no atomics are needed. f32 only (training).
override WG: u32 = 256u;

struct Params {
    len: u32,   // N·C·H·W
    h: u32,
    w: u32,
    ho: u32,    // 1 ≤ Ho ≤ 2H
    wo: u32,    // 1 ≤ Wo ≤ 2W
    // upsample_bilinear's row strips, shared with its Params; the backward runs unsplit: 0, 0, H.
    oy0: u32,
    row0: u32,
    h_full: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;        // [N, C, Ho, Wo]
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;  // [N, C, H, W]

// Weight of tap k (output index 2j − 1 + k) along one axis: the bilinear filter [0.25, 0.75, 0.75, 0.25].
fn tap(k: i32) -> f32 {
    return select(0.25, 0.75, k == 1 || k == 2);
}

@compute @workgroup_size(WG)
fn upsample_bilinear_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) {
        return;
    }
    let ix = i32(i % p.w);
    let iy = i32((i / p.w) % p.h);
    let plane = (i / (p.w * p.h)) * p.ho * p.wo;
    var g = 0.0;
    // Rows outer, columns inner: each row's column sum is weighted once, as the separable kernel factors.
    for (var ky = 0; ky < 4; ky++) {
        let oy = 2 * iy - 1 + ky;
        if (oy < 0 || oy >= i32(p.ho)) {
            continue;
        }
        let row = plane + u32(oy) * p.wo;
        var r = 0.0;
        for (var kx = 0; kx < 4; kx++) {
            let ox = 2 * ix - 1 + kx;
            if (ox >= 0 && ox < i32(p.wo)) {
                r += tap(kx) * dy[row + u32(ox)];
            }
        }
        g += tap(ky) * r;
    }
    dx[i] = g;
}
