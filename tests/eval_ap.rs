//! `sshface eval --gt --pred` on a hand-built ground truth (MAT files written here by the same writer the reader's
//! unit tests use): ignored faces, an image without faces, an image without detections, APs computed by hand.

mod common;

#[path = "../src/readers/mat_write.rs"]
mod mat_write;

use mat_write::{cell, chars, matrix, write, M};
use std::path::Path;
use std::process::Command;

fn boxes(b: &[[f64; 4]]) -> M {
    matrix(b.len(), 4, &b.iter().flatten().copied().collect::<Vec<_>>())
}

fn indices(k: &[f64]) -> M {
    matrix(k.len(), 1, k)
}

/// Event 0: image a (faces F1, F2 and F3; Easy ignores F3), image b (no faces). Event 1: image c (one face, no
/// detections). Detections on a: F1 1.0, F3 0.8, a false positive 0.6, F2 0.4; on b: one at 0.0 (the toolkit skips
/// images without faces; it pins the minimum so normalised scores equal these).
/// Easy: 3 faces counted, AP = 1/3·1 + 1/3·2/3 = 5/9. Medium and Hard count F3 too (4 faces): points (P 1, R 1/4),
/// (1, 1/2), (2/3, 1/2), (3/4, 3/4): AP = 1/4 + 1/4 + 1/4·3/4 = 0.6875.
fn fixture(dir: &Path) {
    let gt = dir.join("gt");
    std::fs::create_dir_all(&gt).unwrap();
    let events = cell(vec![chars("0--Ev"), chars("1--Other")]);
    let files = cell(vec![
        cell(vec![chars("a"), chars("b")]),
        cell(vec![chars("c")]),
    ]);
    let faces = cell(vec![
        cell(vec![
            boxes(&[
                [0.0, 0.0, 10.0, 10.0],
                [100.0, 100.0, 10.0, 10.0],
                [200.0, 200.0, 10.0, 10.0],
            ]),
            matrix(0, 0, &[]),
        ]),
        cell(vec![boxes(&[[0.0, 0.0, 20.0, 20.0]])]),
    ]);
    let main = vec![
        ("event_list", events.clone()),
        ("file_list", files.clone()),
        ("face_bbx_list", faces),
    ];
    std::fs::write(gt.join("wider_face_val.mat"), write(&main, true)).unwrap();
    for (name, keep_a) in [
        ("easy", vec![1.0, 2.0]),
        ("medium", vec![1.0, 2.0, 3.0]),
        ("hard", vec![3.0, 1.0, 2.0]),
    ] {
        let lists = cell(vec![
            cell(vec![indices(&keep_a), matrix(0, 1, &[])]),
            cell(vec![indices(&[1.0])]),
        ]);
        let vars = vec![
            ("event_list", events.clone()),
            ("file_list", files.clone()),
            ("gt_list", lists),
        ];
        // One setting uncompressed: both encodings MATLAB may have written.
        std::fs::write(
            gt.join(format!("wider_{name}_val.mat")),
            write(&vars, name != "hard"),
        )
        .unwrap();
    }
    let pred = dir.join("pred");
    for (ev, name, lines) in [
        (
            "0--Ev",
            "a",
            "4\n0 0 10 10 1.0\n200 200 10 10 0.8\n500 500 10 10 0.6\n100 100 10 10 0.4\n",
        ),
        ("0--Ev", "b", "1\n0 0 10 10 0.0\n"),
        ("1--Other", "c", "0\n"),
    ] {
        std::fs::create_dir_all(pred.join(ev)).unwrap();
        std::fs::write(
            pred.join(ev).join(format!("{name}.txt")),
            format!("{name}\n{lines}"),
        )
        .unwrap();
    }
}

#[test]
fn eval_gt_prints_hand_computed_ap_and_writes_curves() {
    let dir = common::scratch("eval_ap");
    fixture(&dir);
    let curves = dir.join("curves");
    let out = Command::new(env!("CARGO_BIN_EXE_sshface"))
        .args(["eval", "--gt"])
        .arg(dir.join("gt"))
        .arg("--pred")
        .arg(dir.join("pred"))
        .arg("--curves")
        .arg(&curves)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Easy   AP: 0.5556"), "{stdout}");
    assert!(stdout.contains("Medium AP: 0.6875"), "{stdout}");
    assert!(stdout.contains("Hard   AP: 0.6875"), "{stdout}");
    let csv = std::fs::read_to_string(curves.join("pr_curves.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1001);
    assert!(csv.starts_with("threshold,Easy_precision,Easy_recall,Medium_precision"));
    let png = image::open(curves.join("pr_curves.png")).unwrap();
    assert_eq!((png.width(), png.height()), (720, 540));
}

#[test]
fn eval_gt_names_a_missing_result_file() {
    let dir = common::scratch("eval_ap_missing");
    fixture(&dir);
    std::fs::remove_file(dir.join("pred/1--Other/c.txt")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sshface"))
        .args(["eval", "--gt"])
        .arg(dir.join("gt"))
        .arg("--pred")
        .arg(dir.join("pred"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("1--Other/c.txt"),
        "{stderr}"
    );
}
