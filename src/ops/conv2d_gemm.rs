//! The wide register-tiled tier of [`conv2d`](crate::ops::conv2d) (`shaders/conv2d_gemm.wgsl`): an
//! fp32 implicit GEMM with 256 threads, 128×128 output tiles (channels × pixels) for wide layers and
//! narrower ones for few output channels, register prefetch of the next K slice and vec4 loads where
//! the layout allows. Shapes, `Params` and the fused epilogue are those of `conv2d`, which decides when
//! this tier runs and computes the dispatch from [`GemmTile::channels`] and [`GemmTile::pixels`]; the
//! weights come packed k-major ([`packed_layout`], `ops::pack_kmajor`), once per weight.

use crate::ops::conv2d::Params;
use crate::ops::Shader;

pub static SHADER: Shader = crate::shader!("conv2d_gemm", Params);
pub static SHADER_F16: Shader = crate::shader_f16!("conv2d_gemm", Params);

/// One tile configuration: `tm` threads along channels (`256 / tm` along pixels), each computing `rm`
/// channels × `rn` pixels. The shader's override constants `TM`, `RM` and `RN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmTile {
    pub tm: usize,
    pub rm: usize,
    pub rn: usize,
}

impl GemmTile {
    /// Output channels per workgroup (`BM`).
    pub fn channels(self) -> usize {
        self.tm * self.rm
    }
    /// Output pixels per workgroup (`BN`).
    pub fn pixels(self) -> usize {
        THREADS / self.tm * self.rn
    }
    /// GEMM depth per staged slice (`BK`): one 4-pixel patch quad per thread and slice.
    pub fn depth(self) -> usize {
        4 * THREADS / self.pixels()
    }
}

/// Threads per workgroup (`@workgroup_size` in the shader).
pub const THREADS: usize = 256;

/// The table [`tile`] picks from, widest first: 128×128 (8×8 per thread), then 64×256, 32×256 (4×8)
/// and 16×256 (4×4) for layers with few output channels (detection heads: 4–20), and 64×128 (8×4)
/// for wide layers on small maps, where 128×128 tiles would leave much of a large GPU idle. (A 64×64
/// tile of 4×4 per thread ran at half the speed of 8×4 on lavapipe: 2 workgroup loads per 4 FMAs.)
#[rustfmt::skip]
pub const TILES: [GemmTile; 5] = [
    GemmTile { tm: 16, rm: 8, rn: 8 },
    GemmTile { tm: 8, rm: 8, rn: 8 },
    GemmTile { tm: 8, rm: 4, rn: 8 },
    GemmTile { tm: 4, rm: 4, rn: 4 },
    GemmTile { tm: 8, rm: 8, rn: 4 },
];

/// Below this many 128×128 workgroups a wide layer takes 64×128 tiles instead (2× the workgroups). A
/// guess of about one workgroup per streaming multiprocessor of a large GPU (an H100 has 132), not
/// measured: no GPU was available when this tier was written.
const MIN_WIDE_WORKGROUPS: usize = 128;

/// The tile for a layer with `cout_g` output channels per group, `groups` groups and `p_total` output
/// pixels over all images: the narrowest that covers `cout_g` without much waste.
pub fn tile(cout_g: usize, groups: usize, p_total: usize) -> GemmTile {
    let [wide, mid, narrow, head, small] = TILES;
    match cout_g {
        0..=16 => head,
        17..=32 => narrow,
        33..=64 => mid,
        _ => {
            let workgroups =
                groups * cout_g.div_ceil(wide.channels()) * p_total.div_ceil(wide.pixels());
            if workgroups < MIN_WIDE_WORKGROUPS {
                small
            } else {
                wide
            }
        }
    }
}

/// How this tier wants the weights of a conv with `groups` groups of `cout_g` output channels and depth `k`
/// packed ([`pack_kmajor`](crate::ops::pack_kmajor)): channels padded to a multiple of every tile height
/// [`tile`] may pick for `cout_g` (whatever the pixel count), depths to a multiple of every slice depth. One
/// packing then serves a layer at every input size.
pub fn packed_layout(groups: usize, cout_g: usize, k: usize) -> crate::ops::pack_kmajor::Layout {
    let rows_unit = match cout_g {
        0..=16 => TILES[3].channels(),
        17..=32 => TILES[2].channels(),
        33..=64 => TILES[1].channels(),
        _ => TILES[0].channels().max(TILES[4].channels()),
    };
    let depth_unit = TILES.iter().map(|t| t.depth()).max().unwrap_or(1);
    crate::ops::pack_kmajor::Layout {
        groups,
        rows: cout_g,
        k,
        kp: k.next_multiple_of(depth_unit),
        mp: cout_g.next_multiple_of(rows_unit),
    }
}

/// The entry point: `conv2d_gemm_v4` (vec4 patch loads) for 1×1 / stride 1 / no padding with `Ho·Wo` a
/// multiple of 4, so that every 4-pixel quad lies in one image and is 16-byte aligned; `conv2d_gemm`
/// (scalar patch loads, im2col on the fly) otherwise. Both load the packed weights as aligned vec4.
pub fn entry(pointwise: bool, hw: usize) -> &'static str {
    if pointwise && hw.is_multiple_of(4) {
        "conv2d_gemm_v4"
    } else {
        "conv2d_gemm"
    }
}

/// Override constants of `t`, besides the epilogue's (`HAS_BIAS`, `HAS_RES`, `ACT`, `ALPHA`).
pub fn constants(t: GemmTile) -> [(&'static str, f64); 3] {
    [
        ("TM", t.tm as f64),
        ("RM", t.rm as f64),
        ("RN", t.rn as f64),
    ]
}

/// Whether `Auto` sends a conv to this tier in a graph with big tiles enabled: every conv that is not
/// depthwise and has enough depth to fill a slice pipeline (K ≥ 32); depthwise convs stay on their
/// direct kernels, shallow ones (the first layer, K = 27) on the 64-thread GEMM.
pub fn pays(cin_g: usize, k: usize) -> bool {
    cin_g > 1 && k >= 32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tile fits the shader's assumptions: 256 threads, one patch quad and at most one weight
    /// quad per thread and slice, whole vec4 runs, and 16 KiB of workgroup memory (WebGPU's minimum).
    #[test]
    fn tiles_fit_the_shader() {
        for t in TILES {
            assert_eq!(THREADS % t.tm, 0, "{t:?}");
            assert!([4, 8].contains(&t.rm) && [4, 8].contains(&t.rn), "{t:?}");
            assert_eq!(t.depth() * t.pixels(), 4 * THREADS, "{t:?}");
            assert!(
                t.depth().is_multiple_of(4) && t.channels() <= t.pixels(),
                "{t:?}"
            );
            let bytes = 2 * t.depth() * (t.channels() + t.pixels()) * 4;
            assert!(bytes <= 16384, "{t:?}: {bytes} bytes of workgroup memory");
        }
    }

    /// The packed layout covers every tile the table may pick, so the shader needs no bounds checks on weights.
    #[test]
    fn packing_covers_every_tile() {
        for cout_g in 1..600 {
            for p_total in [1, 100, 1600, 7500, 25600, 1 << 20] {
                let t = tile(cout_g, 1, p_total);
                let l = packed_layout(1, cout_g, 27);
                assert!(
                    l.mp.is_multiple_of(t.channels()) && l.mp >= cout_g,
                    "{cout_g} {p_total}: {l:?} {t:?}"
                );
                assert!(l.kp.is_multiple_of(t.depth()) && l.kp >= 27, "{l:?} {t:?}");
            }
        }
    }

    #[test]
    fn table_by_shape() {
        assert_eq!(tile(4, 1, 7500), TILES[3]);
        assert_eq!(tile(20, 1, 7500), TILES[2]);
        assert_eq!(tile(64, 1, 7500), TILES[1]);
        // VGG-16 conv3 at 640x640: 160x160 pixels, 256 channels -> 200·2 = 400 wide tiles.
        assert_eq!(tile(256, 1, 25600), TILES[0]);
        // conv3_2 of the benchmark (600x800 input): 75x100 pixels -> 59·2 = 118 wide tiles.
        assert_eq!(tile(256, 1, 7500), TILES[4]);
        // conv5 at 640x640: 40x40 pixels, 512 channels -> 13·4 = 52 wide tiles.
        assert_eq!(tile(512, 1, 1600), TILES[4]);
    }
}
