//! The tar stream of `detect`'s `.tar` units: entry headers, names, sizes, data. See `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sshface_fuzz::checks::tar(data));
