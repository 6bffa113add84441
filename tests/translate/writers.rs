//! One pipeline through naga the way wgpu's Metal and DX12 back ends take it: override processing for that one
//! entry point with the pipeline's constants, then the MSL or HLSL writer with bindings laid out as wgpu lays out
//! an automatic pipeline layout (group 0, one slot per binding). naga's own CLI processes all entry points at once
//! and panics on conv2d.wgsl; wgpu never does that.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use naga::back::{hlsl, msl};
use naga::valid::ModuleInfo;
use naga::{AddressSpace, Module, ShaderStage, StorageAccess};

/// The back ends translated here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// wgpu-hal's Metal back end.
    Msl,
    /// wgpu-hal's DX12 back end.
    Hlsl,
    /// wgpu-hal's Vulkan back end: lavapipe runs only the 8×8 cooperative-matrix shader, so the 16×16 one
    /// (NVIDIA, AMD) is proven here to pass naga's SPIR-V writer (whose coopStore pitfall panics).
    Spv,
}

impl Target {
    pub fn backend(self) -> wgpu::Backend {
        match self {
            Target::Msl => wgpu::Backend::Metal,
            Target::Hlsl => wgpu::Backend::Dx12,
            Target::Spv => wgpu::Backend::Vulkan,
        }
    }
}

fn write_spv(module: &Module, info: &ModuleInfo, entry: &str) -> Result<String, String> {
    let pipeline = naga::back::spv::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: entry.to_string(),
    };
    let words = naga::back::spv::write_vec(module, info, &Default::default(), Some(&pipeline))
        .map_err(|e| format!("{e:?}"))?;
    // The entry point's name is in the binary as a literal string; return it as text for the caller's check.
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// What a shader needs beyond plain WGSL, from its `enable` directives.
#[derive(Clone, Copy, Debug, Default)]
pub struct Needs {
    pub f16: bool,
    pub coop_matrix: bool,
}

impl Needs {
    pub fn of(source: &str) -> Needs {
        let enabled = |ext: &str| {
            source.lines().any(|l| {
                let l = l.trim();
                l.starts_with("enable ")
                    && l.trim_end_matches(';')
                        .split([' ', ','])
                        .any(|w| w.trim() == ext)
            })
        };
        Needs {
            f16: enabled("f16"),
            coop_matrix: enabled("wgpu_cooperative_matrix"),
        }
    }
}

/// The bound globals of `module` in (group, binding) order with their address space and access.
fn bindings(module: &Module) -> Vec<(naga::ResourceBinding, AddressSpace)> {
    let mut b: Vec<_> = module
        .global_variables
        .iter()
        .filter_map(|(_, v)| v.binding.map(|rb| (rb, v.space)))
        .collect();
    b.sort_by_key(|(rb, _)| (rb.group, rb.binding));
    b
}

fn read_write(space: AddressSpace) -> bool {
    matches!(space, AddressSpace::Storage { access } if access.contains(StorageAccess::STORE))
}

fn write_msl(module: &Module, info: &ModuleInfo, entry: &str) -> Result<String, String> {
    let mut resources = msl::BindingMap::default();
    let mut slot = 0u8;
    for (rb, space) in bindings(module) {
        let target = msl::BindTarget {
            buffer: Some(slot),
            mutable: read_write(space),
            ..Default::default()
        };
        resources.insert(rb, target);
        slot += 1;
    }
    let options = msl::Options {
        // Metal 2.4 (macOS 12): the oldest language wgpu offers f16 and simdgroup matrices (2.3+) on.
        lang_version: (2, 4),
        fake_missing_bindings: false,
        per_entry_point_map: BTreeMap::from([(
            entry.to_string(),
            msl::EntryPointResources {
                resources,
                immediates_buffer: None,
                // wgpu reserves it whenever a storage buffer is bound (runtime-sized arrays' lengths).
                sizes_buffer: Some(slot),
            },
        )]),
        // wgpu's checked shader modules: bounds checks on, workgroup memory left as our pipelines ask.
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: naga::proc::BoundsCheckPolicy::Restrict,
            buffer: naga::proc::BoundsCheckPolicy::Restrict,
            image_load: naga::proc::BoundsCheckPolicy::Restrict,
            binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
        },
        zero_initialize_workgroup_memory: false,
        ..Default::default()
    };
    let pipeline = msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
        ..Default::default()
    };
    msl::write_string(module, info, &options, &pipeline)
        .map(|(src, _)| src)
        .map_err(|e| format!("{e:?}"))
}

fn write_hlsl(
    module: &Module,
    info: &ModuleInfo,
    entry: &str,
    f16: bool,
) -> Result<String, String> {
    // D3D12 registers count per kind: b (constant buffers), t (read-only views), u (read-write views).
    let (mut b, mut t, mut u) = (0u32, 0u32, 0u32);
    let mut binding_map = hlsl::BindingMap::default();
    for (rb, space) in bindings(module) {
        let counter = match space {
            AddressSpace::Uniform => &mut b,
            s if read_write(s) => &mut u,
            _ => &mut t,
        };
        let target = hlsl::BindTarget {
            space: rb.group as u8,
            register: *counter,
            ..Default::default()
        };
        binding_map.insert(rb, target);
        *counter += 1;
    }
    let options = hlsl::Options {
        // Without DXC wgpu falls back to FXC and shader model 5.1; f16 needs DXC and 6.2 (wgpu's SHADER_F16).
        shader_model: if f16 {
            hlsl::ShaderModel::V6_2
        } else {
            hlsl::ShaderModel::V5_1
        },
        binding_map,
        fake_missing_bindings: false,
        // Where wgpu puts num_workgroups and friends (a root constant after the bind groups).
        special_constants_binding: Some(hlsl::BindTarget {
            space: 0,
            register: b,
            ..Default::default()
        }),
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
    };
    let mut src = String::new();
    hlsl::Writer::new(&mut src, &options, &pipeline)
        .write(module, info, None)
        .map_err(|e| format!("{e:?}"))?;
    Ok(src)
}

/// Translates `entry` of `module` with `constants` for `target`. An error or a panic of naga becomes `Err` with
/// its message; the source on success.
pub fn translate(
    module: &Module,
    info: &ModuleInfo,
    entry: &str,
    constants: &[(&str, f64)],
    needs: Needs,
    target: Target,
) -> Result<String, String> {
    let constants: naga::back::PipelineConstants =
        constants.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let run = || {
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            module,
            info,
            Some((ShaderStage::Compute, entry)),
            &constants,
        )
        .map_err(|e| format!("override processing: {e:?}"))?;
        match target {
            Target::Msl => write_msl(&module, &info, entry),
            Target::Hlsl => write_hlsl(&module, &info, entry, needs.f16),
            Target::Spv => write_spv(&module, &info, entry),
        }
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(no message)".into());
        Err(format!("naga panicked: {msg}"))
    })
}
