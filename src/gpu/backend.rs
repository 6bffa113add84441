//! The features we ask an adapter for, its cooperative-matrix sizes, and which shader paths naga can write for each
//! wgpu backend. Adapter features already hide most of what a backend
//! lacks (DX12 lists no cooperative matrices, GL no `SHADER_F16`); these tables are the second guard, so that a
//! precision choice never reaches a writer that cannot express it. `tests/translate.rs` checks that every shader the
//! Metal and DX12 rows allow passes naga's MSL and HLSL writers; the Vulkan rows are checked by running on lavapipe.

/// Whether shaders with `enable wgpu_cooperative_matrix;` translate for `backend`.
pub fn coop_matrix_translates(backend: wgpu::Backend) -> bool {
    match backend {
        // SPIR-V cooperative matrices (VK_KHR_cooperative_matrix); MSL simdgroup matrices (MSL 2.3+).
        wgpu::Backend::Vulkan | wgpu::Backend::Metal => true,
        // naga 30's HLSL and GLSL writers have no cooperative matrices (they panic on them); browsers'
        // WebGPU has no such extension; the no-op device runs nothing.
        wgpu::Backend::Dx12
        | wgpu::Backend::Gl
        | wgpu::Backend::BrowserWebGpu
        | wgpu::Backend::Noop => false,
    }
}

/// Whether shaders with `enable f16;` translate for `backend`.
pub fn f16_translates(backend: wgpu::Backend) -> bool {
    match backend {
        // DX12: HLSL shader model 6.2 `half` (wgpu offers SHADER_F16 only from 6.2 on).
        wgpu::Backend::Vulkan
        | wgpu::Backend::Metal
        | wgpu::Backend::Dx12
        | wgpu::Backend::BrowserWebGpu => true,
        // wgpu's GL backend never offers SHADER_F16.
        wgpu::Backend::Gl | wgpu::Backend::Noop => false,
    }
}

/// Features used when the adapter has them; none is required.
pub(crate) fn wanted_features() -> wgpu::Features {
    wgpu::Features::SHADER_F16
        | wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
        | wgpu::Features::SUBGROUP
        | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
}

/// The square f16×f16→f32 configurations our cooperative-matrix shaders come in (`coop_mat8x8`,
/// `coop_mat16x16`), among those the adapter lists.
pub(crate) fn coop_sizes(adapter: &wgpu::Adapter, features: wgpu::Features) -> Vec<u32> {
    let need = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP;
    // The shaders' workgroup is 4 of the largest subgroups.
    let info = adapter.get_info();
    let wg = 4 * info.subgroup_max_size;
    if !features.contains(need)
        || wg == 0
        || wg > adapter.limits().max_compute_invocations_per_workgroup
    {
        return Vec::new();
    }
    let mut sizes: Vec<u32> = adapter
        .cooperative_matrix_properties()
        .iter()
        .filter(|p| {
            // The staging loops step by WG / (4 · size) rows: a workgroup needs at least one thread per
            // column of a 4-matrix-wide tile, so a subgroup at least as wide as a matrix.
            p.m_size == p.n_size
                && p.n_size == p.k_size
                && matches!(p.m_size, 8 | 16)
                && p.m_size <= info.subgroup_max_size
                && p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == wgpu::CooperativeScalarType::F32
        })
        .map(|p| p.m_size)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's backend table: cooperative matrices on Vulkan and Metal only, f16 everywhere but GL.
    #[test]
    fn readme_table() {
        use wgpu::Backend::*;
        let coop: Vec<_> = [Vulkan, Metal, Dx12, Gl]
            .into_iter()
            .filter(|&b| coop_matrix_translates(b))
            .collect();
        assert_eq!(coop, [Vulkan, Metal]);
        let f16: Vec<_> = [Vulkan, Metal, Dx12, Gl]
            .into_iter()
            .filter(|&b| f16_translates(b))
            .collect();
        assert_eq!(f16, [Vulkan, Metal, Dx12]);
        // A path that needs cooperative matrices also needs f16 operands.
        for b in [Vulkan, Metal, Dx12, Gl, BrowserWebGpu, Noop] {
            assert!(!coop_matrix_translates(b) || f16_translates(b), "{b:?}");
        }
    }
}
