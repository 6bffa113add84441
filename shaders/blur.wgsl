// Anonymisation of one image: every pixel inside the ellipse of a kept detection (its box scaled about the centre
// by mask_scale) is replaced (MODE 0: Gaussian blur, 1: pixelate, 2: solid black); every other byte is copied.
// Works on the packed RGB8 upload and writes packed RGB8, so the unblurred image never leaves the GPU as a result.
// One invocation per output u32 word (4 bytes, parts of up to 2 pixels): no two invocations write the same word.
override WG: u32 = 256u;
override MODE: u32 = 0u;

struct Params {
    h: u32,
    w: u32,
    words: u32,     // ceil(H·W·3/4)
    image: u32,     // n: which image's rows and count
    capacity: u32,  // rows per image
    mask_scale: f32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;          // [ceil(H·W·3/4)] RGB8 bytes, little-endian
@group(0) @binding(2) var<storage, read> rows: array<f32>;         // [N, capacity, 16]: x1 y1 x2 y2 … score
@group(0) @binding(3) var<storage, read> counts: array<u32>;       // [N, 2]: kept, overflow
@group(0) @binding(4) var<storage, read_write> out: array<u32>;    // [ceil(H·W·3/4)] RGB8 bytes, little-endian

// Taps per side of the Gaussian: 2·TAPS+1 samples spaced sigma/3 apart span ±2 sigma.
const TAPS: i32 = 6;

fn byte_at(i: u32) -> u32 {
    return (src[i / 4u] >> ((i % 4u) * 8u)) & 0xffu;
}

fn rgb_at(x: i32, y: i32) -> vec3<f32> {
    let xc = u32(clamp(x, 0, i32(p.w) - 1));
    let yc = u32(clamp(y, 0, i32(p.h) - 1));
    let b = (yc * p.w + xc) * 3u;
    return vec3<f32>(f32(byte_at(b)), f32(byte_at(b + 1u)), f32(byte_at(b + 2u)));
}

// Index of the first kept row whose ellipse holds pixel (x, y), or -1.
fn face_at(x: u32, y: u32) -> i32 {
    let n = min(counts[2u * p.image], p.capacity);
    let fx = f32(x);
    let fy = f32(y);
    for (var r = 0u; r < n; r++) {
        let o = (p.image * p.capacity + r) * 16u;
        let a = (rows[o + 2u] - rows[o]) * 0.5 * p.mask_scale;
        let b = (rows[o + 3u] - rows[o + 1u]) * 0.5 * p.mask_scale;
        if (a <= 0.0 || b <= 0.0) {
            continue;
        }
        let dx = (fx - (rows[o] + rows[o + 2u]) * 0.5) / a;
        let dy = (fy - (rows[o + 1u] + rows[o + 3u]) * 0.5) / b;
        if (dx * dx + dy * dy <= 1.0) {
            return i32(r);
        }
    }
    return -1;
}

// The replacement colour of pixel (x, y) inside the ellipse of row r.
fn masked(x: u32, y: u32, r: u32) -> vec3<u32> {
    if (MODE == 2u) {
        return vec3<u32>(0u);
    }
    let o = (p.image * p.capacity + r) * 16u;
    let side = max(rows[o + 2u] - rows[o], rows[o + 3u] - rows[o + 1u]) * p.mask_scale;
    if (MODE == 1u) {
        // About 12 cells across the mask (at least 4 px, or small faces would stay sharp), on the image's own grid.
        let cell = max(4u, u32(side / 12.0));
        let cx = (x / cell) * cell + cell / 2u;
        let cy = (y / cell) * cell + cell / 2u;
        return vec3<u32>(rgb_at(i32(cx), i32(cy)));
    }
    let sigma = max(side / 10.0, 1.0);
    let step = max(sigma / 3.0, 1.0);
    var acc = vec3<f32>(0.0);
    var wsum = 0.0;
    for (var j = -TAPS; j <= TAPS; j++) {
        for (var i = -TAPS; i <= TAPS; i++) {
            let d = vec2<f32>(f32(i), f32(j)) * step;
            let wt = exp(-dot(d, d) / (2.0 * sigma * sigma));
            acc += wt * rgb_at(i32(x) + i32(round(d.x)), i32(y) + i32(round(d.y)));
            wsum += wt;
        }
    }
    return vec3<u32>(clamp(round(acc / wsum), vec3<f32>(0.0), vec3<f32>(255.0)));
}

@compute @workgroup_size(WG)
fn blur(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let wi = gid.x + gid.y * nwg.x * WG;
    if (wi >= p.words) {
        return;
    }
    let total = p.h * p.w * 3u;
    var word = 0u;
    var last = 0xffffffffu;
    var colour = vec3<u32>(0u);
    var inside = false;
    for (var k = 0u; k < 4u; k++) {
        let i = wi * 4u + k;
        if (i >= total) {
            break;
        }
        let pix = i / 3u;
        if (pix != last) {
            last = pix;
            let x = pix % p.w;
            let y = pix / p.w;
            let r = face_at(x, y);
            inside = r >= 0;
            if (inside) {
                colour = masked(x, y, u32(r));
            }
        }
        var v = byte_at(i);
        if (inside) {
            v = colour[i % 3u];
        }
        word |= v << (k * 8u);
    }
    out[wi] = word;
}
