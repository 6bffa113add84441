// Image preprocessing for one image of a batch: packed RGB8 → OpenCV INTER_LINEAR resize (float image) →
// channel order → (pixel − mean)·mul → written into image `p.image` of the [N, 3, Hc, Wc] canvas, the rest
// of that image set to `p.pad_value`. One invocation per canvas pixel, all three channels.
//
// OpenCV maps a destination index d to the source coordinate f = (float)((d + 0.5)·(1/s) − 0.5), evaluated
// in double and then rounded to float. One ulp of f moves the output by ulp(f)·|neighbour difference|
// (1.5e-2 at f ≈ 1000 for a difference of 255), so f32 arithmetic is not enough: the double evaluation
// is emulated exactly with integers (16-bit limbs), see `src_coord`.
override WG: u32 = 256u;
override RESIZE: u32 = 1u; // 0: the resized size equals the source size and OpenCV copies
override BGR: u32 = 0u;    // 1: output channel 0 is blue

// Element type of the feature maps this shader reads or writes; build.rs generates the f16 variant
// (<name>_f16.wgsl) in which Map is f16. Arithmetic is f32 in both.
alias Map = f32;

struct Params {
    src_h: u32,
    src_w: u32,
    dst_h: u32,
    dst_w: u32,
    canvas_h: u32,
    canvas_w: u32,
    image: u32,
    // 1/s = m · 2^-k exactly (the f64 value), m a 53-bit integer in 16-bit limbs, little-endian
    k: u32,
    mean: vec4<f32>, // per output channel
    mul: vec4<f32>,  // per output channel
    m: vec4<u32>,
    pad_value: f32,
    // Row strips: out holds canvas rows row0.. (canvas_h of them); src holds the packed words word0.. of the image.
    row0: u32,
    word0: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;       // [ceil(H·W·3/4)] RGB8 bytes, little-endian
@group(0) @binding(2) var<storage, read_write> out: array<Map>; // [N, 3, Hc, Wc]

// Unsigned integer of 6 limbs of 16 bits (96 bits): a·m < 2^85 and 2^k with k ≤ 90 fit.
const LIMBS: u32 = 6u;
alias Big = array<u32, 6>;

fn bitlen(x: ptr<function, Big>) -> u32 {
    for (var i = i32(LIMBS) - 1; i >= 0; i--) {
        let v = (*x)[i];
        if (v != 0u) {
            return u32(i) * 16u + 32u - countLeadingZeros(v);
        }
    }
    return 0u;
}

fn bit(x: ptr<function, Big>, pos: u32) -> u32 {
    return ((*x)[pos / 16u] >> (pos % 16u)) & 1u;
}

// Whether any of the bits [0, n) is set.
fn any_below(x: ptr<function, Big>, n: u32) -> bool {
    for (var j = 0u; j < LIMBS; j++) {
        let base = j * 16u;
        if (base >= n) {
            break;
        }
        let mask = (1u << min(16u, n - base)) - 1u;
        if (((*x)[j] & mask) != 0u) {
            return true;
        }
    }
    return false;
}

fn add_pow2(x: ptr<function, Big>, e: u32) {
    var carry = 1u << (e % 16u);
    for (var j = e / 16u; j < LIMBS && carry != 0u; j++) {
        let s = (*x)[j] + carry;
        (*x)[j] = s & 0xffffu;
        carry = s >> 16u;
    }
}

// Rounds x to `bits` significant bits, ties to even: what storing an exact value in a binary
// floating-point format with a `bits`-bit significand does.
fn round_to(x: ptr<function, Big>, bits: u32) {
    let len = bitlen(x);
    if (len <= bits) {
        return;
    }
    let drop = len - bits;
    let half = bit(x, drop - 1u) == 1u;
    let up = half && (any_below(x, drop - 1u) || bit(x, drop) == 1u);
    for (var j = 0u; j < LIMBS; j++) {
        let base = j * 16u;
        if (base + 16u <= drop) {
            (*x)[j] = 0u;
        } else if (base < drop) {
            (*x)[j] &= ~((1u << (drop - base)) - 1u);
        }
    }
    if (up) {
        add_pow2(x, drop);
    }
}

fn less(a: ptr<function, Big>, b: ptr<function, Big>) -> bool {
    for (var i = i32(LIMBS) - 1; i >= 0; i--) {
        if ((*a)[i] != (*b)[i]) {
            return (*a)[i] < (*b)[i];
        }
    }
    return false;
}

// a − b for a ≥ b.
fn sub(a: ptr<function, Big>, b: ptr<function, Big>) -> Big {
    var r: Big;
    var borrow = 0u;
    for (var j = 0u; j < LIMBS; j++) {
        let d = (*a)[j] + 0x10000u - (*b)[j] - borrow;
        r[j] = d & 0xffffu;
        borrow = 1u - (d >> 16u);
    }
    return r;
}

// x >> t as a u32, for a value of x >> t below 2^32.
fn shr_u32(x: ptr<function, Big>, t: u32) -> u32 {
    var v = 0u;
    for (var j = 0u; j < LIMBS; j++) {
        let base = j * 16u;
        if (base + 16u <= t) {
            continue;
        }
        if (base >= t) {
            if (base - t < 32u) {
                v |= (*x)[j] << (base - t);
            }
        } else {
            v |= (*x)[j] >> (t - base);
        }
    }
    return v;
}

// (float)((d + 0.5) · (1/s) − 0.5) with every rounding of the double evaluation: with a = 2d + 1 and
// 1/s = m·2^-k, (d + 0.5)/s = a·m · 2^-(k+1) and 0.5 = 2^k · 2^-(k+1), so on the integer scale 2^-(k+1)
// the product is rounded to 53 bits, 2^k subtracted, the difference rounded to 53 bits, then to 24.
fn src_coord(d: u32) -> f32 {
    let a = 2u * d + 1u;
    var al = array<u32, 2>(a & 0xffffu, a >> 16u);
    var m = array<u32, 4>(p.m.x, p.m.y, p.m.z, p.m.w);
    var prod: Big;
    for (var j = 0u; j < 2u; j++) {
        var carry = 0u;
        for (var i = 0u; i < 4u; i++) {
            // < 2^16 + (2^16 − 1)^2 + 2^16 ≤ 2^32 − 1
            let t = prod[i + j] + m[i] * al[j] + carry;
            prod[i + j] = t & 0xffffu;
            carry = t >> 16u;
        }
        prod[j + 4u] += carry;
    }
    round_to(&prod, 53u);
    var half: Big;
    add_pow2(&half, p.k);
    var q: Big;
    var neg = false;
    if (less(&prod, &half)) {
        q = sub(&half, &prod);
        neg = true;
    } else {
        q = sub(&prod, &half);
    }
    round_to(&q, 53u);
    round_to(&q, 24u);
    let len = bitlen(&q);
    let t = select(0u, len - 24u, len > 24u);
    let f = ldexp(f32(shr_u32(&q, t)), i32(t) - i32(p.k) - 1);
    return select(f, -f, neg);
}

struct Taps {
    i0: u32,
    i1: u32,
    w0: f32,
    w1: f32,
}

// OpenCV's taps along one axis of length n. Columns: a coordinate left of 0 or at/after n − 1 is clamped
// with its fraction reset to 0. Rows keep their fraction and clip both row indices into [0, n − 1].
fn taps(d: u32, n: u32, reset_at_edges: bool) -> Taps {
    var f = src_coord(d);
    let fl = floor(f);
    var s = i32(fl);
    f -= fl;
    if (reset_at_edges) {
        if (s < 0) {
            s = 0;
            f = 0.0;
        }
        if (s >= i32(n) - 1) {
            s = i32(n) - 1;
            f = 0.0;
        }
    }
    let last = i32(n) - 1;
    return Taps(u32(clamp(s, 0, last)), u32(clamp(s + 1, 0, last)), 1.0 - f, f);
}

fn byte_at(i: u32) -> f32 {
    return f32((src[i / 4u - p.word0] >> (8u * (i % 4u))) & 0xffu);
}

fn value(y: u32, x: u32, c: u32, sc: u32) -> f32 {
    return (byte_at((y * p.src_w + x) * 3u + sc) - p.mean[c]) * p.mul[c];
}

@compute @workgroup_size(WG)
fn preprocess(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let plane = p.canvas_h * p.canvas_w;
    if (i >= plane) {
        return;
    }
    let y = i / p.canvas_w + p.row0;
    let x = i % p.canvas_w;
    let base = p.image * 3u * plane + i;
    if (y >= p.dst_h || x >= p.dst_w) {
        for (var c = 0u; c < 3u; c++) {
            out[base + c * plane] = Map(p.pad_value);
        }
        return;
    }
    if (RESIZE == 0u) {
        for (var c = 0u; c < 3u; c++) {
            let sc = select(c, 2u - c, BGR == 1u);
            out[base + c * plane] = Map(value(y, x, c, sc));
        }
        return;
    }
    let ty = taps(y, p.src_h, false);
    let tx = taps(x, p.src_w, true);
    for (var c = 0u; c < 3u; c++) {
        let sc = select(c, 2u - c, BGR == 1u);
        // Horizontal pass per source row, then vertical, as OpenCV's separable resize does.
        let h0 = value(ty.i0, tx.i0, c, sc) * tx.w0 + value(ty.i0, tx.i1, c, sc) * tx.w1;
        let h1 = value(ty.i1, tx.i0, c, sc) * tx.w0 + value(ty.i1, tx.i1, c, sc) * tx.w1;
        out[base + c * plane] = Map(h0 * ty.w0 + h1 * ty.w1);
    }
}
