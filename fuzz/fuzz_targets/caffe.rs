//! The Caffe converter with the real SSH-VGG16 table and with a small table. See `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sshface_fuzz::checks::caffe(data));
