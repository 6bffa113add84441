//! `detect --format json|jsonl|csv|wider` agree with each other; size buckets stay within the README's bound of
//! unbucketed results; `--max-side` reports original pixels; `--list -` with jsonl is a Spark `rdd.pipe` stage.

mod common;
mod vgg_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn detect(args: &[&str], extra: &[&Path]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sshface"))
        .arg("detect")
        .args(args)
        .args(extra)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Per image: (name, error?, boxes with scores).
type Rows = Vec<(String, bool, Vec<[f64; 5]>)>;

fn from_json(v: &[Value]) -> Rows {
    v.iter()
        .map(|o| {
            let faces = o["faces"].as_array().map_or(vec![], |f| {
                f.iter()
                    .map(|f| {
                        let b = |k: usize| f["box"][k].as_f64().unwrap();
                        [b(0), b(1), b(2), b(3), f["score"].as_f64().unwrap()]
                    })
                    .collect()
            });
            (
                o["image"].as_str().unwrap().to_string(),
                o["error"].is_string(),
                faces,
            )
        })
        .collect()
}

fn from_csv(text: &str) -> Rows {
    let mut lines = text.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("image,width,height,face,x1,y1,x2,y2,score,"));
    let mut rows: Rows = Vec::new();
    for l in lines {
        let c: Vec<&str> = l.split(',').collect();
        assert_eq!(c.len(), 20, "{l}");
        if rows.last().is_none_or(|r| r.0 != c[0]) {
            rows.push((c[0].to_string(), !c[19].is_empty(), vec![]));
        }
        if !c[3].is_empty() {
            let f = |k: usize| c[k].parse::<f64>().unwrap();
            rows.last_mut()
                .unwrap()
                .2
                .push([f(4), f(5), f(6), f(7), f(8)]);
        }
    }
    rows
}

#[test]
fn formats_agree() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("formats-agree");
    let imgs = [
        PathBuf::from(format!("{DATA}/astronaut.png")),
        dir.join("bad.jpg"),
        PathBuf::from(format!("{DATA}/grace_hopper.jpg")),
    ];
    std::fs::write(&imgs[1], b"not a jpeg").unwrap();
    let paths: Vec<&Path> = imgs.iter().map(PathBuf::as_path).collect();
    let (c1, json, e1) = detect(&["--format", "json"], &paths);
    let (c2, jsonl, _) = detect(&["--format", "jsonl"], &paths);
    let (c3, csv, _) = detect(&["--format", "csv"], &paths);
    let wider = dir.join("wider");
    let (c4, _, e4) = detect(
        &["--format", "wider", "--out", wider.to_str().unwrap()],
        &paths,
    );
    assert_eq!([c1, c2, c3, c4], [1; 4], "{e1}\n{e4}");
    assert!(e1.contains("3 images, 2 faces, 1 failed"), "{e1}");
    let a = from_json(
        serde_json::from_str::<Value>(&json)
            .unwrap()
            .as_array()
            .unwrap(),
    );
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(a, from_json(&lines));
    assert_eq!(a, from_csv(&csv));
    assert_eq!(
        a.iter().map(|r| r.1).collect::<Vec<_>>(),
        [false, true, false]
    );
    // wider: <unit>/<event>/<stem>.txt with truncated integer boxes; no file for the failed image.
    for (name, _, faces) in a.iter().filter(|r| !r.1) {
        let p = Path::new(name);
        let (event, stem) = (
            p.parent().unwrap().file_name().unwrap(),
            p.file_stem().unwrap(),
        );
        let f = wider
            .join("unit-000000")
            .join(event)
            .join(stem)
            .with_extension("txt");
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let l: Vec<&str> = text.lines().collect();
        assert_eq!(
            (l[0], l[1].parse::<usize>().unwrap()),
            (stem.to_str().unwrap(), faces.len())
        );
        let v: Vec<f64> = l[2].split(' ').map(|x| x.parse().unwrap()).collect();
        let b = faces[0];
        assert_eq!(
            v[..4],
            [
                b[0].trunc(),
                b[1].trunc(),
                b[2].trunc() - b[0].trunc(),
                b[3].trunc() - b[1].trunc()
            ]
        );
        assert!((v[4] - b[4]).abs() < 1e-6);
    }
    let bad_dir = wider.join("unit-000000").join(dir.file_name().unwrap());
    assert!(!bad_dir.join("bad.txt").exists());
}

/// The README's bound: with buckets, a face's box moves by at most 1.5 px and its score by at most 0.001, on the
/// golden images and on crops that put the face near the right and bottom edges (canvas ≠ padded size).
#[test]
fn buckets_stay_within_the_documented_bound() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("formats-bound");
    let astro = image::open(format!("{DATA}/astronaut.png"))
        .unwrap()
        .to_rgb8();
    let mut paths: Vec<PathBuf> = ["astronaut.png", "camera.png", "grace_hopper.jpg"]
        .iter()
        .map(|f| PathBuf::from(format!("{DATA}/{f}")))
        .collect();
    for (i, (x, y, w, h)) in [(0, 0, 290, 200), (100, 20, 300, 330), (150, 40, 135, 150)]
        .into_iter()
        .enumerate()
    {
        let p = dir.join(format!("crop{i}.png"));
        image::imageops::crop_imm(&astro, x, y, w, h)
            .to_image()
            .save(&p)
            .unwrap();
        paths.push(p);
    }
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let run = |flag: &str| {
        let (code, out, err) = detect(&[flag, "--score", "0.3"], &refs);
        assert_eq!(code, 0, "{err}");
        from_json(
            serde_json::from_str::<Value>(&out)
                .unwrap()
                .as_array()
                .unwrap(),
        )
    };
    let (plain, bucketed) = (run("--no-bucket"), run("--bucket"));
    let (mut dbox, mut dscore) = (0.0f64, 0.0f64);
    for (p, b) in plain.iter().zip(&bucketed) {
        assert_eq!(
            p.2.len(),
            b.2.len(),
            "{}: face count {:?} vs {:?}",
            p.0,
            p.2,
            b.2
        );
        assert!(!p.2.is_empty(), "{}: every test image has its face", p.0);
        for (f, g) in p.2.iter().zip(&b.2) {
            dbox = (0..4).map(|k| (f[k] - g[k]).abs()).fold(dbox, f64::max);
            dscore = dscore.max((f[4] - g[4]).abs());
        }
    }
    eprintln!("bucketed vs unbucketed: max |Δbox| {dbox:.4} px, max |Δscore| {dscore:.5}");
    assert!(
        dbox <= 1.5 && dscore <= 0.001,
        "max |Δbox| {dbox}, max |Δscore| {dscore}"
    );
}

/// `--max-side` detects on a downscaled copy and reports boxes in original pixels.
#[test]
fn max_side_reports_original_pixels() {
    if common::gpu().is_none() {
        return;
    }
    let img = PathBuf::from(format!("{DATA}/grace_hopper.jpg"));
    let one = |args: &[&str]| {
        let (code, out, err) = detect(args, &[&img]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (v[0]["width"].as_u64(), v[0]["height"].as_u64()),
            (Some(512), Some(600))
        );
        from_json(v.as_array().unwrap()).remove(0).2
    };
    let (full, small) = (one(&[]), one(&["--max-side", "300"]));
    assert_eq!((full.len(), small.len()), (1, 1));
    let (a, b) = (full[0], small[0]);
    let inter =
        (a[2].min(b[2]) - a[0].max(b[0])).max(0.0) * (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |f: [f64; 5]| (f[2] - f[0]) * (f[3] - f[1]);
    let iou = inter / (area(a) + area(b) - inter);
    assert!(iou > 0.85, "IoU {iou}: {a:?} vs {b:?}");
}

/// PySpark's `rdd.pipe("sshface detect --list - --format jsonl")`: paths in on stdin, one JSON line out per path.
#[test]
fn stdin_list_to_jsonl_is_a_pipe_stage() {
    if common::gpu().is_none() {
        return;
    }
    let paths = [
        format!("{DATA}/camera.png"),
        "/nonexistent/x.jpg".into(),
        format!("{DATA}/astronaut.png"),
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_sshface"))
        .args(["detect", "--list", "-", "--format", "jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(paths.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().map(|l| l["image"].as_str().unwrap()).collect();
    assert_eq!(names, paths.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(lines[1]["error"].is_string());
}

/// ssh-vgg16 buckets only with a fixed --scale (its resize factor then does not depend on the padded size): pad
/// pixel the Caffe mean, same images in the same order, every image processed.
#[test]
fn vgg_buckets_with_a_fixed_scale() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("formats-vgg");
    let weights = vgg_support::write(
        "formats_vgg_random",
        &vgg_support::random_weights(1, &vgg_support::GAINS),
    );
    let imgs = [dir.join("a.png"), dir.join("b.png")];
    vgg_support::image(3, 97, 75).save(&imgs[0]).unwrap();
    vgg_support::image(4, 60, 90).save(&imgs[1]).unwrap();
    let refs: Vec<&Path> = imgs.iter().map(PathBuf::as_path).collect();
    let w = weights.to_str().unwrap();
    let base = [
        "--model",
        "ssh-vgg16",
        "--weights",
        w,
        "--scale",
        "1",
        "--score",
        "0.05",
    ];
    let (code, out, err) = detect(
        &[&base[..], &["--bucket", "--format", "jsonl"]].concat(),
        &refs,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("size buckets on"), "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r["image"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [imgs[0].to_str().unwrap(), imgs[1].to_str().unwrap()]
    );
    assert!(rows.iter().all(|r| r["faces"].is_array()), "{out}");
}
