//! GPU faults through `sshface detect` (`SSHFACE_FAULT`, read by the CLI only for tests): exit 3, the units
//! completed before the fault kept on disk, the unit in progress dropped, the error on stderr; with the rows on
//! standard output, the rows before the fault printed as a complete JSON array.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{gpu, scratch};
use crate::sample;

/// Four small images `a.png` … `d.png` in a fresh folder.
fn images(name: &str) -> (PathBuf, Vec<PathBuf>) {
    let dir = scratch(name);
    let files: Vec<PathBuf> = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = dir.join(format!("{s}.png"));
            sample(i, 96, 80 + 8 * i as u32).save(&p).unwrap();
            p
        })
        .collect();
    (dir, files)
}

fn detect(fault: &str, args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sshface"))
        .env("SSHFACE_FAULT", fault)
        .args(["detect", "--batch", "1"])
        .args(args)
        .args(files)
        .output()
        .unwrap()
}

fn units(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_lost_device_exits_3_keeping_complete_units() {
    if gpu().is_none() {
        return;
    }
    let (dir, files) = images("fault-lost");
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    // One image per unit and per submit: the third submit finds the device destroyed.
    let r = detect("lose-device@3", &["--out", o, "--unit-size", "1"], &files);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("is lost") && stderr.contains("c.png"),
        "{stderr}"
    );
    assert_eq!(
        units(&out),
        ["unit-000000.jsonl", "unit-000001.jsonl"],
        "{stderr}"
    );
    for (u, img) in [
        ("unit-000000.jsonl", "a.png"),
        ("unit-000001.jsonl", "b.png"),
    ] {
        let row: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(u)).unwrap()).unwrap();
        assert!(row["image"].as_str().unwrap().ends_with(img), "{row}");
        assert!(row["faces"].is_array(), "{row}");
    }
    // Rerunning without the fault finishes the two missing units only.
    let r = detect("", &["--out", o, "--unit-size", "1"], &files);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("2 written, 2 skipped"), "{stderr}");
    // On standard output: the rows before the fault, as a complete JSON array.
    let r = detect("lose-device@2", &[], &files);
    assert_eq!(r.status.code(), Some(3));
    let rows: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stalled_submit_exits_3_after_the_gpu_timeout() {
    if gpu().is_none() {
        return;
    }
    let (dir, files) = images("fault-stall");
    let out = dir.join("out");
    let t = Instant::now();
    let r = detect(
        "stall@2",
        &[
            "--gpu-timeout",
            "3",
            "--out",
            out.to_str().unwrap(),
            "--unit-size",
            "1",
        ],
        &files,
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("did not complete within") && stderr.contains("b.png"),
        "{stderr}"
    );
    assert_eq!(units(&out), ["unit-000000.jsonl"], "{stderr}");
    // The stall lasts minutes; the process ends soon after the timeout instead.
    assert!(t.elapsed() < Duration::from_secs(40), "{:?}", t.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn out_of_memory_exits_3_naming_the_size() {
    if gpu().is_none() {
        return;
    }
    let (dir, files) = images("fault-oom");
    // Every plan's arena fails: the batch, then each image alone.
    let r = detect("oom@1", &[], &files[..1]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("out of memory") && stderr.contains("bytes"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gpu_timeout_must_be_positive() {
    let r = Command::new(env!("CARGO_BIN_EXE_sshface"))
        .args(["detect", "--gpu-timeout", "0", "x.png"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("positive number of seconds"));
}
