//! CPU-only: naga parses and validates every shader, and each Rust `Params` has its WGSL struct's size.

use naga::valid::{Capabilities, ValidationFlags, Validator};

fn parse(name: &str, src: &str) -> naga::Module {
    naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("shaders/{name}.wgsl: {}", e.emit_to_string(src)))
}

#[test]
fn every_shader_parses_and_validates() {
    let shaders = sshface::ops::all_shaders();
    assert!(!shaders.is_empty());
    for s in shaders {
        let m = parse(s.name, s.source);
        Validator::new(ValidationFlags::all(), Capabilities::all())
            .validate(&m)
            .unwrap_or_else(|e| panic!("shaders/{}.wgsl: {}", s.name, e.emit_to_string(s.source)));
        assert!(
            m.entry_points.iter().any(|e| e.name == s.name),
            "shaders/{}.wgsl has no entry point named {}",
            s.name,
            s.name
        );
    }
}

#[test]
fn params_structs_match_wgsl() {
    for s in sshface::ops::all_shaders() {
        let m = parse(s.name, s.source);
        let gctx = m.to_ctx();
        let (_, var) = m
            .global_variables
            .iter()
            .find(|(_, v)| {
                v.binding
                    .as_ref()
                    .is_some_and(|b| b.group == 0 && b.binding == 0)
            })
            .unwrap_or_else(|| {
                panic!(
                    "shaders/{}.wgsl: no Params at @group(0) @binding(0)",
                    s.name
                )
            });
        assert_eq!(
            var.space,
            naga::AddressSpace::Uniform,
            "shaders/{}.wgsl: binding 0 must be a uniform Params",
            s.name
        );
        let size = m.types[var.ty].inner.size(gctx) as usize;
        assert_eq!(
            size, s.params_size,
            "shaders/{}.wgsl: WGSL Params is {size} bytes, Rust Params is {}",
            s.name, s.params_size
        );
        assert_eq!(
            size % 16,
            0,
            "shaders/{}.wgsl: Params must be a multiple of 16 bytes",
            s.name
        );
    }
}

/// Every file in shaders/ is registered, so none escapes validation.
#[test]
fn every_file_is_registered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let names: Vec<&str> = sshface::ops::all_shaders().iter().map(|s| s.name).collect();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "wgsl") {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                names.contains(&stem.as_str()),
                "shaders/{stem}.wgsl is not listed in ops::all_shaders()"
            );
        }
    }
}
