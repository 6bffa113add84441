//! CPU-only: every pipeline the launchers create (tests/translate/variants.rs) translates to Metal's MSL,
//! DX12's HLSL and Vulkan's SPIR-V the way wgpu translates it, unless the backend tables of `sshface::gpu::backend` keep its
//! features off that back end. With `SSHFACE_PIPELINES_JSON=FILE` the list of
//! pipelines is written there for `.ci/tint-check`.

#[path = "translate/variants.rs"]
mod variants;
mod vgg_support;
#[path = "translate/writers.rs"]
mod writers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use sshface::gpu::backend::{coop_matrix_translates, f16_translates};
use variants::Variants;
use writers::{translate, Needs, Target};

fn variants() -> &'static Variants {
    static V: OnceLock<Variants> = OnceLock::new();
    V.get_or_init(variants::all)
}

/// Parsed and validated, as wgpu-core does before any back end sees a shader.
fn module(name: &str, src: &str) -> (naga::Module, ModuleInfo) {
    let m = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("shaders/{name}.wgsl: {}", e.emit_to_string(src)));
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&m)
        .unwrap_or_else(|e| panic!("shaders/{name}.wgsl: {}", e.emit_to_string(src)));
    (m, info)
}

/// Every entry point of every shader is created by some launcher call listed in variants.rs, so the translation
/// and the Tint check see all of them.
#[test]
fn every_entry_point_has_a_pipeline() {
    let v = variants();
    let have: BTreeSet<(String, &str)> = v.iter().map(|p| (p.shader.key(), p.entry)).collect();
    let mut missing = Vec::new();
    for s in sshface::ops::all_shaders() {
        let (m, _) = module(&s.key(), s.source);
        for e in &m.entry_points {
            if !have.contains(&(s.key(), e.name.as_str())) {
                missing.push(format!("shaders/{}.wgsl entry {}", s.key(), e.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no launcher call in tests/translate/variants.rs creates: {}",
        missing.join(", ")
    );
    println!("{} pipelines", v.len());
    if let Ok(path) = std::env::var("SSHFACE_PIPELINES_JSON") {
        let json = serde_json::to_string_pretty(&v.to_json()).unwrap();
        std::fs::write(&path, json).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        println!("wrote {path}");
    }
}

/// MSL and HLSL for every pipeline. A shader may fail on a back end only for a feature that
/// `sshface::gpu::backend` says that back end lacks, so the detector never selects it there. (The converse is
/// only reported: naga writes 16×16 simdgroup matrices that Metal does not have, and Metal adapters list 8×8.)
#[test]
fn every_pipeline_translates_to_msl_hlsl_and_spirv() {
    let mut modules = BTreeMap::new();
    let mut failures = Vec::new();
    let mut not_translated = BTreeSet::new();
    let mut conservative = BTreeSet::new();
    let mut translated = 0;
    for p in variants().iter() {
        let (m, info) = modules
            .entry(p.shader.key())
            .or_insert_with(|| module(&p.shader.key(), p.shader.source));
        let needs = Needs::of(p.shader.source);
        for target in [Target::Msl, Target::Hlsl, Target::Spv] {
            let b = target.backend();
            let supported = (!needs.f16 || f16_translates(b))
                && (!needs.coop_matrix || coop_matrix_translates(b));
            let what = format!(
                "shaders/{}.wgsl entry {} constants {:?} ({}) for {target:?}",
                p.shader.key(),
                p.entry,
                p.constants,
                p.from
            );
            match (
                translate(m, info, p.entry, &p.constants, needs, target),
                supported,
            ) {
                (Ok(src), true) => {
                    assert!(
                        src.contains(p.entry),
                        "{what}: entry point missing from the output"
                    );
                    translated += 1;
                }
                (Err(e), true) => failures.push(format!("{what}: {e}")),
                (Err(_), false) => {
                    not_translated.insert(format!("shaders/{}.wgsl for {b:?}", p.shader.key()));
                }
                (Ok(_), false) => {
                    conservative.insert(format!("shaders/{}.wgsl for {b:?}", p.shader.key()));
                }
            }
        }
    }
    println!("{translated} translations");
    for n in &not_translated {
        println!("not translated (the detector never selects it there): {n}");
    }
    for n in &conservative {
        println!("translates, though sshface::gpu::backend keeps it off that backend: {n}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
