//! Whether wgpu guards our shaders at run time (bounds checks, loop bounding, integer-division guards), and the
//! argument that every shader in `shaders/` is sound without them.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Runtime checks that naga adds to every shader: clamped or zeroed out-of-bounds accesses, a bound on every loop,
/// guarded integer division. `Off` compiles with [`wgpu::ShaderRuntimeChecks::unchecked`], which the wgpu authors
/// report up to 1.5× faster on GPUs and which changed nothing measurable on lavapipe; the default stays `On` until a
/// GPU run of `bench/device.sh` shows it faster. Results are identical either way (`tests/shader_checks.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ShaderChecks {
    #[default]
    On,
    Off,
}

impl ShaderChecks {
    /// The name the CLI's `--shader-checks` takes and `bench --json` reports: `on` or `off`.
    pub fn name(self) -> &'static str {
        match self {
            ShaderChecks::On => "on",
            ShaderChecks::Off => "off",
        }
    }
}

impl std::str::FromStr for ShaderChecks {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [ShaderChecks::On, ShaderChecks::Off]
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                Error::Config(format!("unknown shader checks '{s}': expected on or off"))
            })
    }
}

/// Creates a module from one of our own shaders (never from user input), with or without runtime checks; counts
/// the unchecked ones in `unchecked`.
pub(crate) fn create_module(
    device: &wgpu::Device,
    desc: wgpu::ShaderModuleDescriptor<'_>,
    checks: ShaderChecks,
    unchecked: &AtomicU64,
) -> wgpu::ShaderModule {
    match checks {
        ShaderChecks::On => device.create_shader_module(desc),
        ShaderChecks::Off => {
            // SAFETY: `unchecked()` turns off, for the shaders of `shaders/` only (never user input):
            // (1) naga's bounds checks: out-of-range indices into storage and uniform buffers and into function and
            //     workgroup arrays are no longer clamped (Vulkan keeps the device's robustBufferAccess for storage
            //     buffers; Metal and DX12 keep nothing); (2) loop bounding: a loop that never ends may be assumed
            //     unreachable; (3) integer-division guards: x / 0, x % 0 and i32::MIN / -1 become undefined values.
            // Ray-query and mesh-shader checks do not apply (no such shaders). Why each stays sound (audit of every
            // shader; "host" names the launcher in src/ops/<shader>.rs that writes Params and binds the tensors):
            // * Storage buffers. A graph tensor is bound at offset 0 with exactly its bytes (`Plan::build`), a weight
            //   whole (padded to 16 bytes, `GpuContext::upload`). Every shape is non-empty (`Graph::add`: Error::Empty)
            //   and fits one binding (`Graph::compile` → `check_bytes`), so index arithmetic stays below 2^31 and never
            //   wraps. Each launcher writes Params from the shapes of the very tensors it binds, so these guards bound
            //   every access: elementwise and per-output shaders (fill, add, relu_grad, sgd, copy_rows, softmax2,
            //   softmax_loss_grad, smooth_l1_grad, upsample_*, max_pool*, decode, anchor_targets, preprocess, blur,
            //   conv2d_naive/_depthwise/_dw3, nms_mask) return at `i >= p.len` (or count, words, cap·words) before any
            //   access and split i by % and / into coordinates each below its extent; window reads (conv taps, pooling,
            //   bilinear, blur) test 0 <= y < h and 0 <= x < w or clamp; row strips read rows row0.. that the host
            //   checked are in the strip (upsample_bilinear.rs "needs rows", upsample_nearest.rs, copy_rows.rs). The
            //   tiled convolutions (conv2d, conv2d_gemm, conv2d_coop8/16, conv2d_grad) guard each staged load by
            //   k < p.k, channel < cout_g and pixel < p_total plus the padding test, and each store by channel < cout_g
            //   and pixel < p_total; group and m0 follow from the dispatch y = groups·m_tiles, and c_off + C_out <=
            //   C_total is checked by `conv2d_with` ("cannot write output … at channels"), the weight's shape against
            //   the input by `Conv2d::out_shape`, and conv2d_grad's dy window dy_off + C_out <= dy_c by its host
            //   ("output gradient … has shape"); the weight loads of conv2d_gemm (no guard but lid < BK·BM/4) and
            //   conv2d_coop8/16 (none: r < BK, column am < BM) read weights packed [groups, kp, mp] by pack_kmajor
            //   (one thread per packed element, i < p.total), whose layout pads to multiples of the tiles' BK and
            //   BM (`conv2d_gemm::packed_layout`, unit test `packing_covers_every_tile`;
            //   `conv2d_coop::packed_layout`: 2S and 4S), and the conv's Params take kp and mp from that same
            //   layout; the coop staging loops step by WG / BM and WG / BN, at least 1 since `coop_sizes` keeps
            //   only matrix sizes no wider than the largest subgroup; its vec4
            //   patch loads run only where a quad cannot cross a row (the _v4 entry, H·W % 4 == 0), and its workgroup indices hold for each
            //   (TM, RM, RN) of the fixed table `conv2d_gemm::TILES` (256 threads, BK·BN = 1024, the second row of
            //   sa/sb read only when RM/RN is 8), all of which its case table runs.
            //   One-workgroup reductions (ohem, smooth_l1, softmax_loss, nms) stride `i = t; i < len; i += WG`.
            // * Data-dependent indices: selection records carry a row < R, written by select_keys only for rows inside
            //   a segment; `check_config` (nms.rs) rejects segments past R or overlapping, more than MAX_SEGMENTS (31),
            //   R >= 2^27 and cap > MAX_CANDIDATES (32·1024). nms, nms_mask, gather_rows and blur read only the first
            //   min(count, cap) records or rows, and count <= kept records <= R <= len.
            // * Uniform arrays: p.seg[g] only for g < p.segments <= 31 (seg[31] is the call's own), decode's
            //   sizes[a / 4][a % 4] for a < anchors <= decode::MAX_ANCHORS (8), anchor_targets' base[a] for
            //   a < num_anchors <= anchor_targets::MAX_ANCHORS (2), all checked by their hosts.
            // * Workgroup and function arrays: sort's tile[512] with WG = min(len / 2, 256) (sort.rs) and i + j < 2·WG;
            //   nms' removed[1024] with words <= cap / 32 <= 1024; hist, runs and red[256] under a literal
            //   workgroup_size(256); conv2d_coop's sc[WG / SG_MIN · S²] indexed by subgroup_id < WG / subgroup size <=
            //   WG / SG_MIN (SG_MIN is the adapter's subgroup_min_size, precision.rs), its coop loads inside sa, sb by
            //   the tile constants; conv2d_dw3's r[17] with DW_S in {1, 2} (dw3 only at stride <= 2, conv2d.rs);
            //   preprocess' 6-limb integers at bit positions < 96; accumulators indexed by literal-bounded counters.
            // * Division: every divisor is a constant or a Params extent of a non-empty tensor or a checked stride,
            //   kernel or count (w, h, hw, wo, ho, c_out, cout_g, kw, kh·kw, p.j >= 1 in `sort`, m_tiles, anchors,
            //   pooling strides >= 1 by max_pool.rs); no signed division has a negative divisor.
            // * Loops: each is a `for` whose bound is fixed before it (uniform or constant) with a positive step, and
            //   bounds are element or row counts < 2^31 with steps <= 512, so a counter never wraps past its bound;
            //   i32 counters count down to 0. The others: nms' `while (bits != 0u)` clears one bit a turn; sort_local
            //   doubles k from k_lo >= 2 to k_hi <= 2^27 (sort.rs rejects len > 2^27) and halves j to 0; spin's
            //   rounds × iters come from the test-only fault injection.
            // A new shader or launcher must keep these invariants; `tests/shader_checks.rs` compares results with
            // checks off and on bit for bit (it shows equality on its inputs, not soundness in general).
            let m = unsafe {
                device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            };
            unchecked.fetch_add(1, Ordering::Relaxed);
            m
        }
    }
}
