//! The Caffe converter, with the real SSH-VGG16 table and a small one the fuzzer can satisfy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshface::convert::caffe::{convert_caffe, convert_caffe_with};

fuzz_target!(|data: &[u8]| {
    let _ = convert_caffe(data, "fuzz.caffemodel");
    if let Ok(c) = convert_caffe_with(data, "fuzz.caffemodel", &sshface_fuzz::CAFFE_TABLE) {
        for (name, shape, values) in &c.tensors {
            assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
            assert!(
                values.iter().all(|v| v.is_finite()),
                "{name} holds a non-finite value"
            );
        }
    }
});
