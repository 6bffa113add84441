//! Converters and the protobuf reader, on synthetic files the tests write themselves, plus the
//! real RetinaFace graph when it is available (`$SSHFACE_TF_GRAPH` or `tests/data/frozen_graph.pb`).
//! All CPU-only: these always run.

#[path = "convert/caffe.rs"]
mod caffe;
#[path = "convert/caffe_msg.rs"]
mod caffe_msg;
#[path = "convert/protobuf.rs"]
mod protobuf;
#[path = "convert/tables.rs"]
mod tables;
#[path = "convert/tf_graph.rs"]
mod tf_graph;
#[path = "convert/tf_real.rs"]
mod tf_real;
#[path = "convert/tf_synth.rs"]
mod tf_synth;
#[path = "convert/vgg16.rs"]
mod vgg16;
#[path = "convert/write.rs"]
mod write;

/// A fresh, empty scratch directory for one test.
pub fn scratch(test: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sshface-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Asserts that `r` is an error whose message contains every one of `parts`.
#[track_caller]
pub fn assert_err<T: std::fmt::Debug>(r: sshface::Result<T>, parts: &[&str]) {
    let msg = match r {
        Ok(v) => panic!("expected an error containing {parts:?}, got Ok({v:?})"),
        Err(e) => e.to_string(),
    };
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} should contain {p:?}");
    }
}
