//! One `Detector` shared by 8 threads over images of mixed sizes gives exactly the results of sequential calls:
//! more distinct sizes than the plan cache keeps, so threads also build and evict plans while others run them.

use std::sync::Arc;

use sshface::image::RgbImage;
use sshface::{Detector, Face};

use crate::common::gpu;
use crate::sample;

const THREADS: usize = 8;

#[test]
fn eight_threads_sharing_one_detector_equal_sequential_calls() {
    if gpu().is_none() {
        return;
    }
    let det = Arc::new(Detector::builder().build().unwrap());
    // Seven sizes (the plan cache keeps four), three pictures.
    let sizes = [
        (96, 96),
        (128, 96),
        (64, 80),
        (160, 120),
        (72, 72),
        (112, 136),
        (88, 64),
    ];
    let images: Vec<RgbImage> = sizes
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| sample(i, w, h))
        .collect();
    let pairs: Vec<[usize; 2]> = (0..images.len())
        .map(|i| [i, (i + 3) % images.len()])
        .collect();
    let single: Vec<Vec<Face>> = images.iter().map(|i| det.detect(i).unwrap()).collect();
    let batch = |p: &[usize; 2]| vec![images[p[0]].clone(), images[p[1]].clone()];
    let batched: Vec<Vec<Vec<Face>>> = pairs
        .iter()
        .map(|p| det.detect_batch(&batch(p)).unwrap())
        .collect();
    assert!(
        single.iter().any(|f| !f.is_empty()),
        "some image has a face"
    );
    let images = Arc::new(images);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (det, images, pairs) = (det.clone(), images.clone(), pairs.clone());
            std::thread::spawn(move || {
                let n = images.len();
                // Each thread its own order, alternating single images and mixed-size pairs.
                let mut got = Vec::new();
                for k in 0..n {
                    let i = (t * 3 + k) % n;
                    got.push((i, det.detect(&images[i]).unwrap()));
                    let p = pairs[(t + k) % n];
                    let two = vec![images[p[0]].clone(), images[p[1]].clone()];
                    let r = det.detect_batch(&two).unwrap();
                    got.push((n + (t + k) % n, r.concat()));
                }
                got
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        for (i, faces) in h.join().unwrap() {
            let want = if i < single.len() {
                single[i].clone()
            } else {
                batched[i - single.len()].concat()
            };
            assert_eq!(faces, want, "thread {t}, call {i}");
        }
    }
}
