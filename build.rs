//! Generates the f16 variant of every shader whose feature maps are declared through `alias Map = f32;`:
//! the same file with `alias Map = f16;` (and `enable f16;`), written to OUT_DIR as `<stem>_f16.wgsl`.
//! One checked-in source per op keeps the two precisions from drifting apart; naga validates both in
//! the tests (DESIGN.md, convention 2).

use std::path::Path;

const F32_LINE: &str = "alias Map = f32;";

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=shaders");
    let mut entries: Vec<_> = std::fs::read_dir("shaders")
        .expect("shaders/ exists")
        .map(|e| e.expect("readable shaders/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .collect();
    entries.sort();
    for path in entries {
        let src = std::fs::read_to_string(&path).expect("shader is UTF-8");
        let stem = path.file_stem().unwrap().to_string_lossy();
        if !src.lines().any(|l| l.trim() == F32_LINE) {
            continue;
        }
        let mut half: String = src
            .lines()
            .map(|l| {
                if l.trim() == F32_LINE {
                    "alias Map = f16;"
                } else {
                    l
                }
            })
            .flat_map(|l| [l, "\n"])
            .collect();
        if !half.lines().any(|l| l.trim() == "enable f16;") {
            half = format!("enable f16;\n{half}");
        }
        let dest = Path::new(&out).join(format!("{stem}_f16.wgsl"));
        std::fs::write(&dest, half).expect("OUT_DIR is writable");
    }
}
