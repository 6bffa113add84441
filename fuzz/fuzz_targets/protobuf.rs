//! The protobuf wire reader: every field of every nested message, read as each type it could be. See `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sshface_fuzz::checks::protobuf(data));
