//! The command line's edge cases (issue "What a new user trips over"): flag validation, output paths checked
//! first, empty inputs, symlink loops, standard input, GIF, the pixel limit, a closed stdout, the GL fallback, and
//! the README's usage block against `--help`.

mod common;

use std::process::{Command, Output, Stdio};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn sshface() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sshface"))
}

fn run(args: &[&str]) -> (Output, String) {
    let out = sshface().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

/// Rejected by the parser or before the GPU opens, exit 2, the message naming the flag.
#[test]
fn bad_flags_are_usage_errors_naming_the_flag() {
    let dir = common::scratch("edges-flags");
    let ev = dir.join("images/0--Parade");
    std::fs::create_dir_all(&ev).unwrap();
    image::RgbImage::new(8, 8).save(ev.join("a.png")).unwrap();
    let images = dir.join("images");
    let cases: [(&[&str], &str); 8] = [
        (&["detect", "--score", "-1", "x.png"], "--score"),
        (&["detect", "--nms", "1.5", "x.png"], "--nms"),
        (&["detect", "--batch", "0", "x.png"], "--batch"),
        (&["bench", "--batch", "1,0"], "--batch"),
        (&["bench", "--iters", "0"], "--iters"),
        (&["bench", "--size", "64x64x3"], "--size"),
        (
            &[
                "eval",
                "--pyramid",
                "--images",
                images.to_str().unwrap(),
                "--out",
                "o",
            ],
            "pyramid",
        ),
        (&["detect", "--max-faces", "0", "x.png"], "--max-faces"),
    ];
    for (args, want) in cases {
        let (out, err) = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("-- -1"),
            "{args:?}: clap's misleading tip: {err}"
        );
    }
}

/// `--dump` into a missing folder fails before detection with one message naming the path, and nothing on stdout;
/// an OS error is said once.
#[test]
fn output_paths_are_checked_first_and_os_errors_said_once() {
    let (out, err) = run(&[
        "detect",
        "--dump",
        "/nonexistent/x.safetensors",
        &format!("{DATA}/camera.png"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.starts_with("sshface: error: /nonexistent/x.safetensors: "),
        "{err}"
    );
    let (out, err) = run(&[
        "convert",
        "--from",
        "caffe",
        "/nonexistent/in.caffemodel",
        "-o",
        "/tmp/x",
    ]);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn empty_inputs_warn_with_documented_exit_codes() {
    let dir = common::scratch("edges-empty");
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::create_dir_all(dir.join("text")).unwrap();
    std::fs::write(dir.join("text/notes.txt"), "x").unwrap();
    for d in ["empty", "text"] {
        let p = dir.join(d);
        let (out, err) = run(&["detect", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(p.to_str().unwrap()) && err.contains("no images"),
            "{err}"
        );
    }
    // An empty list (a pipeline's empty partition): a warning, an empty array, exit 0.
    let list = dir.join("list.txt");
    std::fs::write(&list, "\n").unwrap();
    let (out, err) = run(&["detect", "--list", list.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning") && err.contains("no images"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]));
    // eval on a flat folder says what layout it expects.
    std::fs::copy(format!("{DATA}/camera.png"), dir.join("text/a.png")).unwrap();
    let (out, err) = run(&[
        "eval",
        "--images",
        dir.join("text").to_str().unwrap(),
        "--out",
        "o",
    ]);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("event sub-folders"), "{err}");
    let (out, err) = run(&["detect", "--list", "-", "-"]);
    assert_eq!(out.status.code(), Some(2), "{err}");
}

/// A folder with a symlink loop, a second link to one file and a GIF; a list line naming a folder; `-` reading one
/// image from standard input; an image over `--max-pixels`.
#[cfg(unix)]
#[test]
fn folders_lists_stdin_gif_and_pixel_limit() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("edges-walk");
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    image::RgbImage::from_pixel(40, 30, image::Rgb([90, 20, 30]))
        .save(dir.join("a/b/x.png"))
        .unwrap();
    image::RgbImage::from_pixel(24, 16, image::Rgb([9, 200, 30]))
        .save(dir.join("a/y.gif"))
        .unwrap();
    std::os::unix::fs::symlink(dir.join("a"), dir.join("a/b/loop")).unwrap();
    std::os::unix::fs::symlink(dir.join("a/b/x.png"), dir.join("a/b/z.png")).unwrap();
    let list = dir.join("list.txt");
    std::fs::write(&list, format!("{}\n", dir.join("a").display())).unwrap();
    let (out, err) = run(&[
        "detect",
        "--list",
        list.to_str().unwrap(),
        "--max-pixels",
        "1000",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "each real file once: {v}");
    assert!(
        rows[0]["error"].as_str().unwrap().contains("--max-pixels"),
        "40x30 > 1000: {v}"
    );
    assert_eq!(
        (rows[1]["width"].as_u64(), rows[1]["height"].as_u64()),
        (Some(24), Some(16)),
        "{v}"
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    let mut child = sshface()
        .args(["detect", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let png = std::fs::read(format!("{DATA}/camera.png")).unwrap();
    child.stdin.take().unwrap().write_all(&png).unwrap();
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v[0]["image"], "-", "{v}");
    assert_eq!(v[0]["faces"].as_array().unwrap().len(), 1, "{v}");
}

/// `sshface … | head` must not panic: a closed stdout ends the process quietly.
#[test]
fn closed_stdout_is_quiet() {
    if common::gpu().is_none() {
        return;
    }
    let mut child = sshface()
        .arg("adapters")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && out.status.code() != Some(101),
        "{:?} {err}",
        out.status
    );
}

/// Without a Vulkan driver (and no $WGPU_BACKEND) the GL adapter is listed and is the one `--device auto` opens.
#[test]
fn gl_is_the_fallback_when_nothing_else_exists() {
    if common::gl().is_none() {
        return;
    }
    let out = sshface()
        .arg("adapters")
        .env_remove("WGPU_BACKEND")
        .env("VK_DRIVER_FILES", "/nonexistent.json")
        .env("VK_ICD_FILENAMES", "/nonexistent.json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("#\tname"), "a header: {stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("0*") && l.contains("\tGl\t")),
        "{stdout}"
    );
}

/// Every flag of `sshface <cmd> --help` is in the README's usage block for that command, and the block names no
/// flag the command does not have.
#[test]
fn readme_usage_matches_help() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let usage = readme
        .split("## Usage\n\n```text\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let flags = |s: &str| -> std::collections::BTreeSet<String> {
        s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(str::to_string)
            .collect()
    };
    for cmd in [
        "detect",
        "convert",
        "bench",
        "profile",
        "eval",
        "adapters",
        "train",
        "train-step",
    ] {
        // `train` must not take `train-step`'s block.
        let block: String = usage
            .split("sshface ")
            .filter(|b| {
                b.strip_prefix(cmd)
                    .is_some_and(|r| r.starts_with([' ', '\n']))
            })
            .collect();
        let out = sshface().args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        let options = help.split("Options:").nth(1).unwrap_or("");
        let mut want = flags(
            &options
                .lines()
                .filter(|l| l.trim_start().starts_with('-'))
                // The flag itself, not its description (which may mention other flags).
                .map(|l| l.trim_start().split("  ").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        want.remove("--help");
        // `-o, --output`: the README writes the short form.
        if cmd == "convert" {
            want.remove("--output");
        }
        assert_eq!(
            flags(&block),
            want,
            "README usage of `sshface {cmd}` vs --help"
        );
    }
}

/// The README's sample output is what its documented command prints: the same document, keys and order, with the
/// same numbers (within 0.5 where `auto` may run f16 on other adapters; exact text on lavapipe, where it runs f32).
#[test]
fn readme_sample_output_is_real() {
    if common::gpu().is_none() {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    assert!(readme.contains("cargo run --release -- detect tests/data/astronaut.png"));
    let sample = readme.split("prints (stdout;").nth(1).unwrap();
    let sample = sample
        .split("```json\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let out = sshface()
        .current_dir(root)
        .args(["detect", "tests/data/astronaut.png"])
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout);
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&got).unwrap(),
        serde_json::from_str(sample).unwrap(),
    );
    fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value::*;
        match (a, b) {
            (Number(x), Number(y)) => (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= 0.5,
            (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y)),
            (Object(x), Object(y)) => {
                x.keys().eq(y.keys()) && x.iter().zip(y).all(|((_, x), (_, y))| close(x, y))
            }
            _ => a == b,
        }
    }
    assert!(close(&a, &b), "README:\n{sample}\nreal:\n{got}");
    let cpu = common::gpu().unwrap().info.device_type == wgpu::DeviceType::Cpu;
    assert!(!cpu || got == sample, "README:\n{sample}\nreal:\n{got}");
}

/// `--max-faces`, clipped boxes by default and `--raw-boxes`, and `--scale` for retinaface-mnv2, on the golden
/// astronaut cut at its face (box x1 ≈ 177; the crop starts at x = 200).
#[test]
fn max_faces_clipping_and_scale() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("edges-clip");
    let img = image::open(format!("{DATA}/astronaut.png"))
        .unwrap()
        .to_rgb8();
    let cut = dir.join("cut.png");
    image::imageops::crop_imm(&img, 200, 0, 312, 512)
        .to_image()
        .save(&cut)
        .unwrap();
    let faces = |extra: &[&str], path: &str| -> Vec<serde_json::Value> {
        let out = sshface()
            .arg("detect")
            .args(extra)
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["faces"].as_array().unwrap().clone()
    };
    let x1 = |f: &serde_json::Value| f["box"][0].as_f64().unwrap();
    let cut = cut.to_str().unwrap();
    let many = faces(&["--score", "0.001", "--nms", "0.9"], cut);
    assert!(many.len() > 1, "precondition: {many:?}");
    assert!(
        many.iter().all(|f| x1(f) >= 0.0),
        "clipped by default: {many:?}"
    );
    let one = faces(
        &["--score", "0.001", "--nms", "0.9", "--max-faces", "1"],
        cut,
    );
    assert_eq!(one, many[..1], "the best one");
    assert_eq!(x1(&one[0]), 0.0, "{one:?}");
    let raw = faces(&["--score", "0.3", "--raw-boxes"], cut);
    assert!(x1(&raw[0]) < 0.0, "{raw:?}");
    let s2 = faces(&["--scale", "2"], &format!("{DATA}/astronaut.png"));
    assert_eq!(s2.len(), 1, "{s2:?}");
    assert!((x1(&s2[0]) - 177.3).abs() < 6.0, "{s2:?}");
}
