//! Image decoding up to the packed input (decoders, pixel limit, EXIF, partial decodes, packing). See `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sshface_fuzz::checks::image(data));
