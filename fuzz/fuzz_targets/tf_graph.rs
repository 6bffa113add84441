//! The TF GraphDef converter with the real RetinaFace table and with a small table. See `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sshface_fuzz::checks::tf_graph(data));
