//! The safetensors loader and both networks' load path on the no-op device. See `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sshface_fuzz::checks::weights(data));
