//! The WIDER FACE training annotations (`wider_face_train_bbx_gt.txt`), any bytes as lossy UTF-8. See `src/checks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sshface_fuzz::checks::wider_train(data));
