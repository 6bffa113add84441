//! WIDER FACE training data (src/train/data.rs): the annotation parser on hand-written text and on every kind of
//! broken input, the flip of boxes and pixels, and the seeded per-iteration sample order.

use std::path::{Path, PathBuf};

use sshface::train::data::*;
use sshface::train::targets::gt_boxes;
use sshface::Error;

const SRC: &str = "wider_face_train_bbx_gt.txt";

fn parse(text: &str) -> sshface::Result<Vec<Annotation>> {
    parse_wider_train(text, Path::new(SRC))
}

/// Asserts that `text` is refused with an [`Error::Parse`] at `line` whose message names the file and the line, says
/// what was `expected`, and contains every one of `needles`.
fn refused(text: &str, line: usize, needles: &[&str]) {
    let e = parse(text).expect_err("broken text must be refused");
    let msg = e.to_string();
    let Error::Parse { file, line: at, .. } = &e else {
        panic!("expected Error::Parse, got {e:?}");
    };
    assert_eq!((file.as_str(), *at), (SRC, line), "{msg}");
    assert!(msg.contains(&format!("{SRC}:{line}:")), "{msg}");
    for n in ["expected"].iter().chain(needles) {
        assert!(msg.contains(n), "'{n}' missing from: {msg}");
    }
}

const GOOD: &str = "0--Parade/a.jpg\n2\n10 20 30 40 0 0 0 0 0 0 \n1 2 3 4 2 0 1 0 2 0 \n\
                    1--Handshaking/b.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \n\
                    2--Demonstration/c.jpg\n1\n-3 5 7 9 0 0 0 1 0 0\n";

fn good() -> Vec<Annotation> {
    vec![
        Annotation {
            path: PathBuf::from("0--Parade/a.jpg"),
            faces_xywh: vec![[10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0]],
        },
        Annotation {
            path: PathBuf::from("1--Handshaking/b.jpg"),
            faces_xywh: vec![],
        },
        Annotation {
            path: PathBuf::from("2--Demonstration/c.jpg"),
            faces_xywh: vec![[-3.0, 5.0, 7.0, 9.0]],
        },
    ]
}

#[test]
fn parses_records_with_an_empty_one() {
    assert_eq!(parse(GOOD).unwrap(), good());
}

#[test]
fn crlf_and_trailing_blank_lines() {
    let crlf = GOOD.replace('\n', "\r\n") + "\r\n\r\n";
    assert_eq!(parse(&crlf).unwrap(), good());
    assert_eq!(parse(&(GOOD.to_string() + "\n\n  \n")).unwrap(), good());
    assert!(parse("").unwrap().is_empty());
    assert!(parse("\n\r\n").unwrap().is_empty());
}

#[test]
fn truncated_text_names_the_line_after_the_end() {
    refused(
        "a.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n",
        4,
        &["face 2 of 2 of 'a.jpg'", "ends"],
    );
    refused(
        "a.jpg\n1\n1 2 3 4 0 0 0 0 0 0\nb.jpg\n",
        5,
        &["face count of 'b.jpg'"],
    );
    // The placeholder line after an empty record is part of the record.
    refused("a.jpg\n0\n", 3, &["placeholder", "ends"]);
}

#[test]
fn bad_counts() {
    for count in ["-1", "two", "1.5"] {
        let text = format!("a.jpg\n{count}\n1 2 3 4 0 0 0 0 0 0\n");
        refused(&text, 2, &["face count", &format!("'{count}'")]);
    }
    // A count far beyond the text is a truncation, not an allocation.
    refused(
        "a.jpg\n18446744073709551615\n1 2 3 4 0 0 0 0 0 0\n",
        4,
        &["ends"],
    );
}

#[test]
fn bad_face_lines() {
    for (face, found) in [
        ("1 2 3 4", "found 4 fields"),
        ("1 2 3 4 0 0 0 0 0 0 0", "found 11 fields"),
        ("1 2 x 4 0 0 0 0 0 0", "found 'x'"),
        ("1 2 3.5 4 0 0 0 0 0 0", "found '3.5'"),
    ] {
        let text =
            format!("ok.jpg\n1\n0 0 5 5 0 0 0 0 0 0\na.jpg\n2\n1 1 9 9 0 0 0 0 0 0\n{face}\n");
        refused(&text, 7, &["face 2 of 2 of 'a.jpg'", found]);
    }
    // A blank line inside a record.
    refused("a.jpg\n1\n\n1 2 3 4 0 0 0 0 0 0\n", 3, &["blank"]);
    // CRLF does not shift the line numbers.
    refused("a.jpg\r\n1\r\n1 2 3\r\n", 3, &["found 3 fields"]);
}

#[test]
fn absolute_paths_are_refused() {
    let text = "ok.jpg\n1\n0 0 5 5 0 0 0 0 0 0\n/etc/a.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n";
    refused(text, 4, &["relative", "'/etc/a.jpg'"]);
}

#[test]
fn load_names_a_missing_file() {
    let missing = std::env::temp_dir().join(format!("sshface-no-such-{}.txt", std::process::id()));
    let msg = load_wider_train(&missing).unwrap_err().to_string();
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
}

#[test]
fn load_train_image_names_a_missing_image() {
    let ann = &parse(GOOD).unwrap()[0];
    let root = std::env::temp_dir().join(format!("sshface-no-root-{}", std::process::id()));
    let msg = load_train_image(&root, ann, true).unwrap_err().to_string();
    assert!(
        msg.contains(&root.join(&ann.path).display().to_string()),
        "{msg}"
    );
}

#[test]
fn gt_boxes_of_parsed_faces_clamp_and_drop() {
    let ann =
        parse("a.jpg\n3\n-5 10 20 20 0 0 0 0 0 0\n90 90 30 30 0 0 0 0 0 0\n5 5 0 9 0 0 0 0 0 0\n")
            .unwrap();
    let boxes = gt_boxes(&ann[0].faces_xywh, [100, 100]);
    assert_eq!(
        boxes,
        vec![[0.0, 10.0, 15.0, 30.0], [90.0, 90.0, 99.0, 99.0]]
    );
}

#[test]
fn flip_round_trips_and_mirrors() {
    let boxes = vec![[0.0, 1.0, 9.0, 5.0], [3.5, 2.0, 7.25, 4.0]];
    let once = flip_boxes(&boxes, 10);
    assert_eq!(
        once[0],
        [0.0, 1.0, 9.0, 5.0],
        "a full-width box stays full width"
    );
    assert_eq!(once[1], [1.75, 2.0, 5.5, 4.0]);
    assert_eq!(flip_boxes(&once, 10), boxes);

    let hw = [3, 5];
    let rgb: Vec<u8> = (0..3 * 5 * 3).map(|v| v as u8).collect();
    let mut f = rgb.clone();
    flip_rgb(&mut f, hw);
    for y in 0..3 {
        for x in 0..5 {
            let (a, b) = ((y * 5 + x) * 3, (y * 5 + 4 - x) * 3);
            assert_eq!(f[a..a + 3], rgb[b..b + 3], "pixel ({x}, {y})");
        }
    }
    flip_rgb(&mut f, hw);
    assert_eq!(f, rgb);
    // Wrong lengths and empty images are left alone rather than a panic.
    flip_rgb(&mut [1, 2, 3, 4], [2, 0]);
    let mut short = vec![1, 2, 3, 4, 5, 6, 7];
    flip_rgb(&mut short, [2, 2]);
    assert_eq!(short, vec![4, 5, 6, 1, 2, 3, 7]);
}

#[test]
fn epoch_order_is_a_seeded_permutation() {
    for n in [0, 1, 2, 7, 100] {
        let mut o = epoch_order(n, 3, 42);
        assert_eq!(o, epoch_order(n, 3, 42));
        o.sort_unstable();
        assert_eq!(o, (0..n).collect::<Vec<_>>());
    }
    assert_ne!(epoch_order(100, 0, 42), epoch_order(100, 1, 42));
    assert_ne!(epoch_order(100, 0, 42), epoch_order(100, 0, 43));
}

#[test]
fn sample_visits_each_image_once_per_epoch_and_is_deterministic() {
    let n = 37;
    let run = |seed| {
        (0..5 * n as u64)
            .map(|i| sample(n, i, seed, true))
            .collect::<Vec<_>>()
    };
    let a = run(7);
    assert_eq!(
        a,
        run(7),
        "same seed, same sequence (what --resume relies on)"
    );
    assert_ne!(a, run(8));
    for (e, epoch) in a.chunks(n).enumerate() {
        let mut seen: Vec<usize> = epoch.iter().map(|s| s.0).collect();
        assert_eq!(seen, epoch_order(n, e as u64, 7));
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>(), "epoch {e}");
    }
    // Resuming in the middle of an epoch gives what the run had there.
    assert_eq!(sample(n, 2 * n as u64 + 5, 7, true), a[2 * n + 5]);
    let flips = a.iter().filter(|s| s.1).count();
    assert!(
        (60..=125).contains(&flips),
        "{flips} of {} flipped",
        a.len()
    );
    assert!((0..5 * n as u64).all(|i| !sample(n, i, 7, false).1));
    // Without flips the images are the same ones.
    assert!((0..5 * n as u64).all(|i| sample(n, i, 7, false).0 == a[i as usize].0));
}
