//! The MAT-file reader and the accessors `eval --gt` reads WIDER FACE's ground truth with. See `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sshface_fuzz::checks::mat(data));
