//! Hand-computed fixtures for the WIDER FACE protocol (the derivations are in the comments).

use super::*;

fn at(x: f64, y: f64, s: f64) -> (Xywh, f64) {
    ([x, y, 10.0, 10.0], s)
}

/// Image A: faces F1, F2 counted, F3 not; predictions F1 (1.0), F3 (0.8, ignored: no proposal), a false positive
/// (0.6), F2 (0.4). Image B: no faces, one prediction (skipped by the toolkit: it cannot cost precision). Image C:
/// one counted face, no predictions. Faces counted: 3.
/// Curve: (P 1, R 1/3) above 0.6, (1/2, 1/3) in (0.4, 0.6], (2/3, 2/3) at ≤ 0.4.
/// AP = 1/3 · 1 + 1/3 · 2/3 = 5/9.
#[test]
fn ignored_faces_empty_images_and_hand_ap() {
    let gt = vec![
        GtImage {
            faces: vec![
                [0.0, 0.0, 10.0, 10.0],
                [100.0, 100.0, 10.0, 10.0],
                [200.0, 200.0, 10.0, 10.0],
            ],
            keep: vec![0, 1],
        },
        GtImage {
            faces: vec![],
            keep: vec![],
        },
        GtImage {
            faces: vec![[0.0, 0.0, 20.0, 20.0]],
            keep: vec![0],
        },
    ];
    let preds = vec![
        vec![
            at(0.0, 0.0, 1.0),
            at(200.0, 200.0, 0.8),
            at(500.0, 500.0, 0.6),
            at(100.0, 100.0, 0.4),
        ],
        vec![at(0.0, 0.0, 0.9)],
        vec![],
    ];
    let (curve, ap) = evaluate(&preds, &gt, 1000);
    assert_eq!(curve.len(), 1000);
    // t = 100: threshold 0.9; t = 500: 0.5; t = 1000: 0.
    assert_eq!(curve[99], [1.0, 1.0 / 3.0]);
    assert_eq!(curve[499], [0.5, 1.0 / 3.0]);
    assert_eq!(curve[999], [2.0 / 3.0, 2.0 / 3.0]);
    assert!((ap - 5.0 / 9.0).abs() < 1e-12, "AP {ap}");
}

/// Two identical counted faces G1 = G2, two predictions on them with equal scores (0.7) and a false positive
/// (0.2). IoU ties go to the first face: both predictions take G1, so the second is a false positive and G2 is
/// never recalled. Above 0.7 nothing is proposed (precision 0/0 = NaN, which MATLAB's max skips); (1/2, 1/2) in
/// (0.2, 0.7], (1/3, 1/2) at ≤ 0.2. AP = 1/2 · 1/2 = 1/4.
#[test]
fn ties_in_score_and_iou() {
    let gt = vec![GtImage {
        faces: vec![[0.0, 0.0, 10.0, 10.0]; 2],
        keep: vec![0, 1],
    }];
    let preds = vec![vec![
        at(0.0, 0.0, 0.7),
        at(0.0, 0.0, 0.7),
        at(50.0, 50.0, 0.2),
    ]];
    let (curve, ap) = evaluate(&preds, &gt, 1000);
    assert!(curve[0][0].is_nan() && curve[0][1] == 0.0);
    assert_eq!(curve[299], [0.5, 0.5]);
    assert_eq!(curve[999], [1.0 / 3.0, 0.5]);
    assert!((ap - 0.25).abs() < 1e-12, "AP {ap}");
}

#[test]
fn iou_uses_inclusive_pixels_and_the_half_threshold() {
    // 10×10 boxes as x, y, w, h become corners [0, 0, 10, 10]: 11×11 pixels each. Shifted by 4: overlap 7×11.
    let a = [0.0, 0.0, 10.0, 10.0];
    assert!((overlap(&a, &a) - 1.0).abs() < 1e-12);
    let b = [4.0, 0.0, 14.0, 10.0];
    assert!((overlap(&a, &b) - 77.0 / (242.0 - 77.0)).abs() < 1e-12);
    assert_eq!(overlap(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
}

#[test]
fn scores_are_sorted_stably_and_normalised_over_the_set() {
    let mut p = vec![
        vec![([1.0; 4], 2.0), ([2.0; 4], 4.0), ([3.0; 4], 2.0)],
        vec![],
        vec![([4.0; 4], 3.0)],
    ];
    normalise(&mut p);
    assert_eq!(
        p[0],
        vec![([2.0; 4], 1.0), ([1.0; 4], 0.0), ([3.0; 4], 0.0)]
    );
    assert_eq!(p[2], vec![([4.0; 4], 0.5)]);
}

#[test]
fn voc_ap_of_a_perfect_detector_is_one() {
    assert!((voc_ap(&[[1.0, 0.5], [1.0, 1.0]]) - 1.0).abs() < 1e-12);
}
