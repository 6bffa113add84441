//! The synthetic face set of tests/train_support: boxes inside the image, apart and of the asked size, textured
//! backgrounds, the same bytes for the same seed, and a WIDER folder written from it read back by the library's
//! parser and loader (in a temporary folder: nothing is saved into the repository).

mod common;
mod train_support;

use sshface::train::data::{flip_boxes, load_train_image, load_wider_train};
use sshface::train::targets::{gt_boxes, iou};
use train_support::*;

const HW: [usize; 2] = [128, 128];

fn set(seed: u64) -> Vec<SynthImage> {
    synth_set(8, HW, seed, 1..=3, 20..=60)
}

#[test]
fn synth_faces_are_inside_apart_and_sized() {
    let set = set(1);
    assert_eq!(set.len(), 8);
    let total: usize = set.iter().map(|im| im.boxes.len()).sum();
    assert!(total >= 8, "only {total} faces in 8 images of 1–3");
    for (k, im) in set.iter().enumerate() {
        assert_eq!(im.hw, HW);
        assert_eq!(im.rgb.len(), HW[0] * HW[1] * 3);
        assert!(im.boxes.len() <= 3, "image {k}: {:?}", im.boxes);
        for b in &im.boxes {
            assert!(
                b.iter().all(|v| v.fract() == 0.0),
                "image {k}: {b:?} not whole pixels"
            );
            assert!(
                0.0 <= b[0] && b[0] < b[2] && b[2] <= HW[1] as f32 - 1.0,
                "image {k}: {b:?}"
            );
            assert!(
                0.0 <= b[1] && b[1] < b[3] && b[3] <= HW[0] as f32 - 1.0,
                "image {k}: {b:?}"
            );
            // The longer side was drawn from 20..=60; rounding the crop and the box moves it by a pixel or two.
            let side = (b[2] - b[0] + 1.0).max(b[3] - b[1] + 1.0);
            assert!(
                (18.0..=62.0).contains(&side),
                "image {k}: side {side} of {b:?}"
            );
        }
        for (i, a) in im.boxes.iter().enumerate() {
            for b in &im.boxes[i + 1..] {
                assert!(iou(*a, *b) <= 0.1, "image {k}: {a:?} and {b:?} overlap");
            }
        }
        assert_eq!(
            gt_boxes(&im.xywh(), im.hw),
            im.boxes,
            "image {k}: xywh must convert back exactly"
        );
        // A texture, not a flat fill: many distinct colours.
        let mut colours: Vec<&[u8]> = im.rgb.chunks_exact(3).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(colours.len() > 200, "image {k}: {} colours", colours.len());
    }
}

#[test]
fn synth_is_deterministic_per_seed() {
    let (a, b) = (set(3), set(3));
    assert!(a == b, "the same seed gave different images");
    let c = set(4);
    assert!(
        a.iter().zip(&c).all(|(x, y)| x.rgb != y.rgb),
        "another seed must give other images"
    );
}

#[test]
fn wider_folder_round_trips_through_the_parser_and_loader() {
    let set = set(2);
    let dir = common::scratch("train-synth");
    let ann_file = write_wider_folder(&dir, &set).unwrap();
    assert_eq!(ann_file, dir.join("wider_face_train_bbx_gt.txt"));
    let anns = load_wider_train(&ann_file).unwrap();
    assert_eq!(anns.len(), set.len());
    let root = dir.join("images");
    for (k, (ann, im)) in anns.iter().zip(&set).enumerate() {
        assert_eq!(
            ann.path,
            std::path::Path::new(&format!("{EVENT}/{k:04}.png"))
        );
        assert_eq!(ann.faces_xywh, im.xywh(), "image {k}");
        let plain = load_train_image(&root, ann, false).unwrap();
        assert_eq!((plain.hw, plain.flipped), (im.hw, false));
        assert!(plain.rgb == im.rgb, "image {k}: PNG pixels changed");
        assert_eq!(plain.boxes, im.boxes, "image {k}");
        let flipped = load_train_image(&root, ann, true).unwrap();
        assert_eq!(flipped.boxes, flip_boxes(&im.boxes, HW[1]), "image {k}");
        assert!(flipped.flipped && flipped.rgb != im.rgb);
    }

    // An image without faces is written with WIDER's placeholder line and read back empty.
    let mut empty = set[0].clone();
    empty.boxes.clear();
    let ann_file = write_wider_folder(&dir, &[empty]).unwrap();
    let anns = load_wider_train(&ann_file).unwrap();
    assert_eq!(anns.len(), 1);
    assert!(anns[0].faces_xywh.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
