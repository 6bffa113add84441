//! Finite weights that overflow: a head convolution with weights and bias of 3e38 makes every regression or logit
//! of its level infinite (or inf − inf = NaN). The detector returns no box with a non-finite coordinate or score:
//! such anchors are dropped, the other levels' detections stay.

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::SafeTensors;
use sshface::{Detector, Face, NamedTensor};

use crate::common::{gpu, scratch};
use crate::DATA;

/// The bundled retinaface-mnv2 weights with every tensor named in `huge` set to 3e38 (finite), written to a file.
fn crafted(name: &str, huge: &[&str]) -> PathBuf {
    let st = SafeTensors::deserialize(sshface::detector::BUNDLED_RETINAFACE).unwrap();
    let mut tensors: Vec<NamedTensor> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| {
            let mut v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if huge.contains(&n.as_str()) {
                v.fill(3e38);
            }
            (n, t.shape().to_vec(), v)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let n_huge = tensors
        .iter()
        .filter(|t| huge.contains(&t.0.as_str()))
        .count();
    assert_eq!(n_huge, huge.len(), "every crafted tensor exists");
    let path = scratch(name).join("crafted.safetensors");
    sshface::convert::write_safetensors(&path, &tensors, &HashMap::new()).unwrap();
    path
}

fn detect(weights: &PathBuf) -> Vec<Face> {
    let det = Detector::builder().weights(weights).build().unwrap();
    let img = sshface::image_io::load_rgb(format!("{DATA}/astronaut.png")).unwrap();
    let faces = det.detect(&img).unwrap();
    for f in &faces {
        let all = f.bbox.iter().chain(f.landmarks.iter().flatten().flatten());
        assert!(
            f.score.is_finite() && all.clone().all(|v| v.is_finite()),
            "{f:?}"
        );
    }
    faces
}

#[test]
fn overflowing_box_heads_drop_every_anchor() {
    if gpu().is_none() {
        return;
    }
    // dw = dh >= 3e38 at every anchor: exp overflows, so every box is infinite and none may come back, although the
    // class head still scores the astronaut's face near 1.
    let w = crafted(
        "nonfinite-bbox",
        &[
            "head.bbox.0.weight",
            "head.bbox.0.bias",
            "head.bbox.1.weight",
            "head.bbox.1.bias",
            "head.bbox.2.weight",
            "head.bbox.2.bias",
        ],
    );
    assert_eq!(detect(&w), vec![]);
}

#[test]
fn overflowing_class_heads_drop_every_anchor() {
    if gpu().is_none() {
        return;
    }
    // Both logits 3e38 + 3e38·Σx: infinite (NaN probability), or equal and finite (probability 0.5, not above the
    // default threshold 0.5).
    let w = crafted(
        "nonfinite-class",
        &[
            "head.class.0.weight",
            "head.class.0.bias",
            "head.class.1.weight",
            "head.class.1.bias",
            "head.class.2.weight",
            "head.class.2.bias",
        ],
    );
    assert_eq!(detect(&w), vec![]);
}

#[test]
fn one_overflowing_level_leaves_the_others() {
    if gpu().is_none() {
        return;
    }
    // The astronaut's face (about 93×121 px) is found by the 64/128 px anchors of level 1; level 0's boxes and
    // landmarks overflow and are dropped. TensorFlow's box for the face (README): [177.3437, 59.942, 270.2441, 181.2588].
    let w = crafted(
        "nonfinite-level0",
        &[
            "head.bbox.0.weight",
            "head.bbox.0.bias",
            "head.landmark.0.weight",
            "head.landmark.0.bias",
        ],
    );
    let faces = detect(&w);
    assert_eq!(faces.len(), 1, "{faces:?}");
    let want = [177.3437, 59.942, 270.2441, 181.2588];
    for (g, w) in faces[0].bbox.iter().zip(want) {
        assert!((g - w).abs() < 1e-2, "{:?} vs {want:?}", faces[0].bbox);
    }
}
