//! The TF GraphDef converter, with the real RetinaFace table and a small one the fuzzer can satisfy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshface::convert::tf_graph::{convert_tf_graph, convert_tf_graph_with};

fuzz_target!(|data: &[u8]| {
    let _ = convert_tf_graph(data, "fuzz.pb");
    if let Ok(c) = convert_tf_graph_with(data, "fuzz.pb", &sshface_fuzz::TF_TABLE) {
        for (name, shape, values) in &c.tensors {
            assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
            assert!(
                values.iter().all(|v| v.is_finite()),
                "{name} holds a non-finite value"
            );
        }
    }
});
