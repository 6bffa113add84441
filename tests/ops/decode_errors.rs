//! decode's shape and element-type errors (CPU only, no GPU): each names the layer, the tensor and the sizes
//! or types.

use sshface::gpu::{DType, Graph, TensorId};
use sshface::ops::decode::{decode, BoxCoding, DecodeImage, Level};

const SSD: BoxCoding = BoxCoding::Ssd {
    variances: [0.1, 0.2],
};

/// Scores [2, 2, 13, 7], bbox with `bbox_c` channels, rows [2, r, 16]; Ssd with landmarks when `landm_c` > 0.
fn try_decode(
    bbox_c: usize,
    landm_c: usize,
    r: usize,
    offset: usize,
    images: usize,
    coding: BoxCoding,
) -> String {
    let mut g = Graph::new();
    let scores = g.input("m2.scores", &[2, 2, 13, 7]).unwrap();
    let bbox = g.input("m2.bbox", &[2, bbox_c, 13, 7]).unwrap();
    let landmarks: Option<TensorId> =
        (landm_c > 0).then(|| g.input("m2.landm", &[2, landm_c, 13, 7]).unwrap());
    let rows = g.tensor("rows", &[2, r, 16]).unwrap();
    let level = Level {
        scores,
        bbox,
        landmarks,
        stride: 16,
        anchor_sizes: vec![4.0, 8.0],
        module: 1,
    };
    let imgs = vec![
        DecodeImage {
            input_hw: [200, 110],
            scale: 1.0,
        };
        images
    ];
    match decode(&mut g, "m2.decode", &level, &coding, &imgs, rows, offset) {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

fn expect(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "error should mention {p:?}: {e}");
    }
}

#[test]
fn decode_accepts_valid_levels() {
    assert_eq!(try_decode(8, 0, 182, 0, 2, BoxCoding::Rcnn), "ok");
    assert_eq!(try_decode(8, 20, 200, 18, 2, SSD), "ok");
}

#[test]
fn decode_rejects_bad_bbox_channels() {
    let e = try_decode(6, 0, 182, 0, 2, BoxCoding::Rcnn);
    expect(
        &e,
        &[
            "m2.decode",
            "m2.bbox",
            "[2, 6, 13, 7]",
            "[2, 8 (4·A, A = 2), 13, 7]",
        ],
    );
}

#[test]
fn decode_rejects_bad_landmark_channels() {
    let e = try_decode(8, 10, 182, 0, 2, SSD);
    expect(&e, &["m2.decode", "m2.landm", "[2, 10, 13, 7]", "20"]);
}

#[test]
fn decode_rejects_rows_too_small() {
    // 13·7·2 = 182 rows needed from offset 1: R = 182 is one short.
    let e = try_decode(8, 0, 182, 1, 2, BoxCoding::Rcnn);
    expect(
        &e,
        &["m2.decode", "rows", "[2, 182, 16]", "183", "row_offset 1"],
    );
}

#[test]
fn decode_rejects_wrong_image_count() {
    let e = try_decode(8, 0, 182, 0, 3, BoxCoding::Rcnn);
    expect(
        &e,
        &["m2.decode", "3 image geometries", "batch of 2", "m2.scores"],
    );
}

#[test]
fn decode_rejects_landmarks_with_rcnn() {
    let e = try_decode(8, 20, 182, 0, 2, BoxCoding::Rcnn);
    expect(&e, &["m2.decode", "m2.landm", "Rcnn"]);
}

#[test]
fn decode_rejects_anchor_count_mismatch() {
    let mut g = Graph::new();
    let scores = g.input("m1.scores", &[1, 3, 4, 4]).unwrap();
    let bbox = g.input("m1.bbox", &[1, 12, 4, 4]).unwrap();
    let rows = g.tensor("rows", &[1, 48, 16]).unwrap();
    let level = Level {
        scores,
        bbox,
        landmarks: None,
        stride: 8,
        anchor_sizes: vec![1.0, 2.0],
        module: 0,
    };
    let img = [DecodeImage {
        input_hw: [32, 32],
        scale: 1.0,
    }];
    let e = decode(&mut g, "m1.decode", &level, &BoxCoding::Rcnn, &img, rows, 0)
        .unwrap_err()
        .to_string();
    expect(
        &e,
        &[
            "m1.decode",
            "m1.scores",
            "3 anchor channels",
            "anchor_sizes lists 2",
        ],
    );
}

/// An SSD level with landmarks whose scores, bbox, landmarks and rows have the given element types.
fn try_dtypes([scores, bbox, landm, rows]: [DType; 4]) -> String {
    let mut g = Graph::new();
    let level = Level {
        scores: g.input_as("m2.scores", &[1, 2, 13, 7], scores).unwrap(),
        bbox: g.input_as("m2.bbox", &[1, 8, 13, 7], bbox).unwrap(),
        landmarks: Some(g.input_as("m2.landm", &[1, 20, 13, 7], landm).unwrap()),
        stride: 16,
        anchor_sizes: vec![4.0, 8.0],
        module: 1,
    };
    let rows = g.tensor_as("rows", &[1, 182, 16], rows).unwrap();
    let img = [DecodeImage {
        input_hw: [200, 110],
        scale: 1.0,
    }];
    match decode(&mut g, "m2.decode", &level, &SSD, &img, rows, 0) {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn decode_dtypes() {
    use DType::{F16, F32};
    // f16 maps with f32 scores and rows: the f16 path.
    assert_eq!(try_dtypes([F32, F16, F16, F32]), "ok");
    // bbox and landmarks of different types.
    for (b, l) in [(F16, F32), (F32, F16)] {
        let e = try_dtypes([F32, b, l, F32]);
        expect(
            &e,
            &[
                "m2.decode",
                "mixed element types",
                &format!("'m2.bbox' is {b:?}"),
                &format!("'m2.landm' is {l:?}"),
            ],
        );
    }
    // Scores are softmax2's f32 output; f16 ones are refused.
    let e = try_dtypes([F16, F16, F16, F32]);
    expect(&e, &["m2.decode", "scores 'm2.scores' must be f32", "F16"]);
    // Rows are written as f32.
    let e = try_dtypes([F32, F16, F16, F16]);
    expect(&e, &["m2.decode", "rows 'rows' must be f32", "F16"]);
}
