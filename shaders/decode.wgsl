// Box decoding of one detection level for one image: one invocation per anchor writes one 16-float row
// [x1, y1, x2, y2, lx0, ly0, ..., lx4, ly4, module, score] in image pixels.
// Anchors/priors come from the row index, in f32 with the reference's operation order (see src/ops/decode.rs).
// A row whose score, box or landmarks are not finite (an overflowed head: inf, or inf − inf = NaN) gets a NaN score,
// which selection ranks below every score: it never reaches NMS. ssh-vgg16 clips an infinite coordinate to the
// image border as numpy does; only NaN before the clip drops its row. Tested on the bits: WGSL lets compilers assume
// that NaN and infinity never occur.
override WG: u32 = 256u;
override CODING: u32 = 0u;     // 0 Ssd (retinaface priors + variances), 1 Rcnn (py-faster-rcnn anchors, clipped)
override LANDMARKS: u32 = 0u;  // 1: binding 3 holds landmark deltas; 0: landmarks are written as 0

// Element type of the feature maps this shader reads or writes; build.rs generates the f16 variant
// (<name>_f16.wgsl) in which Map is f16. Arithmetic is f32 in both.
alias Map = f32;

struct Params {
    n: u32,           // image index in the batch
    anchors: u32,     // A
    h: u32,
    w: u32,
    stride: u32,
    rows: u32,        // R of the rows tensor
    row_offset: u32,
    count: u32,       // h * w * anchors
    module_id: f32,
    in_w: f32,        // Ssd: padded width; Rcnn: resized width (clip to in_w - 1)
    in_h: f32,
    scale: f32,       // coordinates are divided by it last
    var0: f32,
    var1: f32,
    y0: u32,          // first row of the level the heads hold (row strips)
    _p1: u32,
    sizes: array<vec4<f32>, 2>,  // per anchor: Ssd min size, Rcnn scale
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> scores: array<f32>;     // [N, A, H, W]
@group(0) @binding(2) var<storage, read> bbox: array<Map>;       // [N, 4A, H, W]
@group(0) @binding(3) var<storage, read> landm: array<Map>;      // [N, 10A, H, W] (bbox again when LANDMARKS = 0)
@group(0) @binding(4) var<storage, read_write> rows: array<f32>; // [N, R, 16]

fn finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// Channel c of the level's [N, C, H, W] map at the current cell.
fn chan(c: u32, channels: u32, cell: u32) -> u32 {
    return (p.n * channels + c) * p.h * p.w + cell;
}

@compute @workgroup_size(WG)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.count) {
        return;
    }
    let a = i % p.anchors;
    let cell = i / p.anchors;
    let x = cell % p.w;
    let y = cell / p.w + p.y0;
    let size = p.sizes[a / 4u][a % 4u];
    let b4 = 4u * p.anchors;
    let dx = f32(bbox[chan(4u * a, b4, cell)]);
    let dy = f32(bbox[chan(4u * a + 1u, b4, cell)]);
    let dw = f32(bbox[chan(4u * a + 2u, b4, cell)]);
    let dh = f32(bbox[chan(4u * a + 3u, b4, cell)]);
    let o = (p.n * p.rows + p.row_offset + i) * 16u;

    var box: vec4<f32>;
    var lm: array<f32, 10>;
    var valid = true;
    if (CODING == 0u) {
        // retinaface-mnv2.md §6: priors normalised by the padded size; §7: TF's operation order.
        let s = f32(p.stride);
        let pcx = ((f32(x) + 0.5) * s) / p.in_w;
        let pcy = ((f32(y) + 0.5) * s) / p.in_h;
        let pw = size / p.in_w;
        let ph = size / p.in_h;
        let cx = pcx + dx * p.var0 * pw;
        let cy = pcy + dy * p.var0 * ph;
        let w = pw * exp(dw * p.var1);
        let h = ph * exp(dh * p.var1);
        box = vec4<f32>(
            (cx - w / 2.0) * p.in_w, (cy - h / 2.0) * p.in_h,
            (cx + w / 2.0) * p.in_w, (cy + h / 2.0) * p.in_h) / p.scale;
        for (var k = 0u; k < 5u; k++) {
            var lx = 0.0;
            var ly = 0.0;
            if (LANDMARKS == 1u) {
                let l10 = 10u * p.anchors;
                lx = ((pcx + f32(landm[chan(10u * a + 2u * k, l10, cell)]) * p.var0 * pw) * p.in_w) / p.scale;
                ly = ((pcy + f32(landm[chan(10u * a + 2u * k + 1u, l10, cell)]) * p.var0 * ph) * p.in_h) / p.scale;
            }
            lm[2u * k] = lx;
            lm[2u * k + 1u] = ly;
        }
    } else {
        // ssh-vgg16.md §4: base anchor side 16·scale centred at 7.5, shifted by stride·cell;
        // §5: "+1" widths, raw deltas, clip to the resized image, then divide by the resize factor.
        let half = 0.5 * (16.0 * size - 1.0);
        let ax1 = (7.5 - half) + f32(p.stride * x);
        let ay1 = (7.5 - half) + f32(p.stride * y);
        let ax2 = (7.5 + half) + f32(p.stride * x);
        let ay2 = (7.5 + half) + f32(p.stride * y);
        let w = ax2 - ax1 + 1.0;
        let h = ay2 - ay1 + 1.0;
        let cx = ax1 + 0.5 * w;
        let cy = ay1 + 0.5 * h;
        let pcx = dx * w + cx;
        let pcy = dy * h + cy;
        let pw = exp(dw) * w;
        let ph = exp(dh) * h;
        let hi = vec4<f32>(p.in_w - 1.0, p.in_h - 1.0, p.in_w - 1.0, p.in_h - 1.0);
        // numpy's maximum(minimum(b, hi), 0) order, so an overflowed exp still lands on the border.
        let raw = vec4<f32>(pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph);
        valid = !(is_nan(raw.x) || is_nan(raw.y) || is_nan(raw.z) || is_nan(raw.w));
        box = max(min(raw, hi), vec4<f32>(0.0)) / p.scale;
        for (var k = 0u; k < 10u; k++) {
            lm[k] = 0.0;
        }
    }
    let score = scores[chan(a, p.anchors, cell)];
    valid = valid && finite(box.x) && finite(box.y) && finite(box.z) && finite(box.w) && finite(score);
    rows[o] = box.x;
    rows[o + 1u] = box.y;
    rows[o + 2u] = box.z;
    rows[o + 3u] = box.w;
    for (var k = 0u; k < 10u; k++) {
        rows[o + 4u + k] = lm[k];
        valid = valid && finite(lm[k]);
    }
    rows[o + 14u] = p.module_id;
    rows[o + 15u] = bitcast<f32>(select(0x7fc00000u, bitcast<u32>(score), valid));
}
