// Per-module anchor assignment of SSH training (src/train/targets.rs is the CPU reference), f32, batch of one.
// One invocation per anchor (a, y, x): anchor = base[a] + stride·(x, y); outside the allowed border → label −1;
// else max IoU (+1 widths) over the first num_gt GT boxes: ≥ 0.5 → 1 with bbox_transform targets against the
// best (first of equal) GT and inside weights 1; < 0.3 → 0; otherwise −1. num_gt = 0: every inside anchor is 0.
struct Params {
    map_w: u32,
    map_h: u32,
    num_anchors: u32,
    num_gt: u32,
    stride: u32,
    border: f32,
    img_w: f32,
    img_h: f32,
    base: array<vec4<f32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gt: array<f32>;              // [G, 4] x1, y1, x2, y2
@group(0) @binding(2) var<storage, read_write> labels: array<f32>;    // [1, A, H, W]
@group(0) @binding(3) var<storage, read_write> targets: array<f32>;   // [1, 4A, H, W]
@group(0) @binding(4) var<storage, read_write> weights: array<f32>;   // [1, 4A, H, W]

fn iou(a: vec4<f32>, b: vec4<f32>) -> f32 {
    let iw = min(a.z, b.z) - max(a.x, b.x) + 1.0;
    let ih = min(a.w, b.w) - max(a.y, b.y) + 1.0;
    if (iw <= 0.0 || ih <= 0.0) {
        return 0.0;
    }
    let inter = iw * ih;
    let aa = (a.z - a.x + 1.0) * (a.w - a.y + 1.0);
    let ba = (b.z - b.x + 1.0) * (b.w - b.y + 1.0);
    return inter / (aa + ba - inter);
}

@compute @workgroup_size(256)
fn anchor_targets(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let hw = p.map_w * p.map_h;
    if (i >= p.num_anchors * hw) {
        return;
    }
    let a = i / hw;
    let cell = i % hw;
    let x = cell % p.map_w;
    let y = cell / p.map_w;
    let sx = f32(x * p.stride);
    let sy = f32(y * p.stride);
    let b = p.base[a];
    let anc = vec4<f32>(b.x + sx, b.y + sy, b.z + sx, b.w + sy);
    var label = -1.0;
    var d = vec4<f32>(0.0);
    let inside = anc.x >= -p.border && anc.y >= -p.border && anc.z < p.img_w + p.border && anc.w < p.img_h + p.border;
    if (inside) {
        var best = 0.0;
        var arg = 0u;
        for (var g = 0u; g < p.num_gt; g++) {
            let o = iou(anc, vec4<f32>(gt[4u * g], gt[4u * g + 1u], gt[4u * g + 2u], gt[4u * g + 3u]));
            if (g == 0u || o > best) {
                best = o;
                arg = g;
            }
        }
        if (p.num_gt > 0u && best >= 0.5) {
            label = 1.0;
            let q = vec4<f32>(gt[4u * arg], gt[4u * arg + 1u], gt[4u * arg + 2u], gt[4u * arg + 3u]);
            let ew = anc.z - anc.x + 1.0;
            let eh = anc.w - anc.y + 1.0;
            let ecx = anc.x + 0.5 * ew;
            let ecy = anc.y + 0.5 * eh;
            let gw = q.z - q.x + 1.0;
            let gh = q.w - q.y + 1.0;
            let gcx = q.x + 0.5 * gw;
            let gcy = q.y + 0.5 * gh;
            d = vec4<f32>((gcx - ecx) / ew, (gcy - ecy) / eh, log(gw / ew), log(gh / eh));
        } else if (best < 0.3) {
            label = 0.0;
        }
    }
    labels[i] = label;
    let w = select(0.0, 1.0, label == 1.0);
    for (var j = 0u; j < 4u; j++) {
        let o = (4u * a + j) * hw + cell;
        targets[o] = d[j];
        weights[o] = w;
    }
}
