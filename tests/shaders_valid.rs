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

/// The 16×16 cooperative-matrix shader is the 8×8 one in the other matrix size, nothing else: only the
/// 8×8 file runs on lavapipe, so the two must not drift apart.
#[test]
fn coop16_is_coop8_resized() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).unwrap();
    let want = read("conv2d_coop8.wgsl")
        .replace("coop_mat8x8", "coop_mat16x16")
        .replace("const S: u32 = 8u;", "const S: u32 = 16u;")
        .replace("fn conv2d_coop8(", "fn conv2d_coop16(");
    assert!(
        want == read("conv2d_coop16.wgsl"),
        "shaders/conv2d_coop16.wgsl must equal conv2d_coop8.wgsl with coop_mat8x8 -> coop_mat16x16, \
         S = 8u -> 16u and the entry renamed"
    );
}

/// build.rs generated an f16 variant of every shader that declares `alias Map = f32;`, differing only there.
#[test]
fn f16_variants_differ_only_in_map_type() {
    for s in sshface::ops::all_shaders().iter().filter(|s| s.half) {
        let f32 = sshface::ops::all_shaders()
            .into_iter()
            .find(|t| t.name == s.name && !t.half)
            .unwrap_or_else(|| panic!("{}: f16 variant without its f32 shader", s.name));
        let back = s
            .source
            .replacen("alias Map = f16;", "alias Map = f32;", 1)
            .replacen("enable f16;\n", "", 1);
        let orig = f32.source.replacen("enable f16;\n", "", 1);
        assert_eq!(back, orig, "{}_f16.wgsl", s.name);
        assert!(s.source.contains("alias Map = f16;"), "{}", s.name);
    }
    let n = sshface::ops::all_shaders()
        .iter()
        .filter(|s| s.half)
        .count();
    assert_eq!(
        n, 13,
        "f16 variants: every shader that reads or writes feature maps or conv weights"
    );
}
