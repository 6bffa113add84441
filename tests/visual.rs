//! `detect --draw / --crops / --blur` on the repository's test images: files exist with the right sizes, and
//! anonymised copies differ inside every face and are byte-identical far from faces, in each mode.

mod common;

use std::path::Path;
use std::process::Command;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// Runs `sshface detect ARGS` in tests/data (so outputs keep the bare image names) and returns its JSON.
fn detect(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sshface"))
        .current_dir(DATA)
        .arg("detect")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn boxes(v: &serde_json::Value, image: usize) -> Vec<[f64; 4]> {
    v[image]["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let b = f["box"].as_array().unwrap();
            std::array::from_fn(|k| b[k].as_f64().unwrap())
        })
        .collect()
}

fn load(p: &Path) -> image::RgbImage {
    image::open(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_rgb8()
}

#[test]
fn draw_and_crops() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("visual_draw");
    let (draw, crops, aligned) = (dir.join("draw"), dir.join("crops"), dir.join("aligned"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let v = detect(&[
        "--draw",
        &s(&draw),
        "--crops",
        &s(&crops),
        "astronaut.png",
        "grace_hopper.jpg",
    ]);
    detect(&["--crops", &s(&aligned), "--align", "112", "astronaut.png"]);
    for (k, name) in ["astronaut.png", "grace_hopper.jpg"].iter().enumerate() {
        let orig = load(&Path::new(DATA).join(name));
        let drawn = load(&draw.join(name));
        assert_eq!(drawn.dimensions(), orig.dimensions(), "{name}");
        let b = boxes(&v, k);
        assert!(!b.is_empty(), "{name}: no faces");
        let [x1, y1, _, y2] = b[0].map(|c| c.round() as u32);
        let edge = drawn.get_pixel(x1, (y1 + y2) / 2).0;
        // Green, within JPEG's loss at quality 95.
        assert!(
            edge[0] < 40 && edge[1] > 215 && edge[2] < 40,
            "{name}: box edge not drawn: {edge:?}"
        );
        let stem = name.split('.').next().unwrap();
        for (j, bx) in b.iter().enumerate() {
            let crop = load(&crops.join(format!("{stem}_{j}.png")));
            let (w, h) = (bx[2] - bx[0], bx[3] - bx[1]);
            let (cw, ch) = crop.dimensions();
            // Clipping to the image can only shrink the box plus 20 % per side.
            assert!(
                cw > 0 && ch > 0 && cw as f64 <= 1.4 * w + 2.0 && ch as f64 <= 1.4 * h + 2.0,
                "{name} face {j}: crop {cw}×{ch} for a {w:.0}×{h:.0} box"
            );
        }
    }
    // The astronaut's box lies well inside the image: its crop is the box plus 20 % on each side.
    let b = boxes(&v, 0)[0];
    let crop = load(&crops.join("astronaut_0.png"));
    let want =
        |lo: f64, hi: f64| ((hi + 0.2 * (hi - lo)).ceil() - (lo - 0.2 * (hi - lo)).floor()) as u32;
    assert_eq!(crop.dimensions(), (want(b[0], b[2]), want(b[1], b[3])));
    assert_eq!(
        load(&aligned.join("astronaut_0.png")).dimensions(),
        (112, 112)
    );
}

#[test]
fn blur_changes_faces_only() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("visual_blur");
    for mode in ["gaussian", "pixelate", "solid"] {
        let out = dir.join(mode);
        let o = out.to_str().unwrap();
        let v = detect(&["--blur", o, "--mode", mode, "astronaut.png", "camera.png"]);
        for (k, name) in ["astronaut.png", "camera.png"].iter().enumerate() {
            let orig = load(&Path::new(DATA).join(name));
            let anon = load(&out.join(name));
            assert_eq!(anon.dimensions(), orig.dimensions(), "{mode} {name}");
            let faces = boxes(&v, k);
            assert!(!faces.is_empty(), "{name}: no faces");
            for (j, b) in faces.iter().enumerate() {
                let (mut inside, mut changed) = (0, 0);
                for y in b[1].ceil() as u32..b[3] as u32 {
                    for x in b[0].ceil() as u32..b[2] as u32 {
                        inside += 1;
                        changed += (anon.get_pixel(x, y) != orig.get_pixel(x, y)) as u32;
                    }
                }
                assert!(
                    changed * 2 > inside,
                    "{mode} {name} face {j}: {changed} of {inside} box pixels changed"
                );
            }
            // Far from faces: outside every box grown by 50 % on each side (the mask ellipse is 1.3× the box).
            let far = |x: u32, y: u32| {
                faces.iter().all(|b| {
                    let (mw, mh) = (0.5 * (b[2] - b[0]), 0.5 * (b[3] - b[1]));
                    let (x, y) = (x as f64, y as f64);
                    x < b[0] - mw || x > b[2] + mw || y < b[1] - mh || y > b[3] + mh
                })
            };
            let mut checked = 0;
            for (x, y, p) in orig.enumerate_pixels() {
                if far(x, y) {
                    checked += 1;
                    assert_eq!(
                        anon.get_pixel(x, y),
                        p,
                        "{mode} {name}: ({x}, {y}) far from faces changed"
                    );
                }
            }
            assert!(checked > 1000, "{name}: too few far pixels to check");
        }
    }
}

/// The library call in one batch of two sizes (two groups of the plan): each anonymised image equals the CPU
/// reference applied to the faces returned with it (pixelate and solid exactly, Gaussian within 1).
#[test]
fn detect_anonymised_matches_the_reference() {
    use sshface::detector::{Blur, BlurMode};
    if common::gpu().is_none() {
        return;
    }
    let det = sshface::Detector::builder().build().unwrap();
    let imgs: Vec<image::RgbImage> = ["astronaut.png", "camera.png"]
        .iter()
        .map(|n| load(&Path::new(DATA).join(n)))
        .collect();
    for mode in [BlurMode::Gaussian, BlurMode::Pixelate, BlurMode::Solid] {
        let b = Blur {
            mode,
            mask_scale: 1.3,
        };
        let out = det.detect_anonymised(&imgs, &b).unwrap();
        assert_eq!(out.len(), 2);
        for ((faces, anon), img) in out.iter().zip(&imgs) {
            assert!(!faces.is_empty(), "{mode:?}: no faces");
            assert_eq!(anon.dimensions(), img.dimensions());
            let boxes: Vec<[f32; 4]> = faces.iter().map(|f| f.bbox).collect();
            let hw = [img.height() as usize, img.width() as usize];
            let want = sshface::reference::blur::blur(img.as_raw(), hw, &boxes, &b);
            let atol = (mode == BlurMode::Gaussian) as i32;
            let worst = anon
                .as_raw()
                .iter()
                .zip(&want)
                .map(|(g, w)| (*g as i32 - *w as i32).abs())
                .max()
                .unwrap();
            assert!(worst <= atol, "{mode:?}: max |GPU − reference| {worst}");
        }
        // Detection results are those of detect_batch.
        let plain = det.detect_batch(&imgs).unwrap();
        assert_eq!(plain, out.iter().map(|o| o.0.clone()).collect::<Vec<_>>());
    }
}

/// Impossible image-output options fail before any GPU work, naming the option and what it needs.
#[test]
fn visual_flags_are_checked_first() {
    let dir = common::scratch("visual_flags");
    let d = dir.to_str().unwrap();
    let img = format!("{DATA}/astronaut.png");
    let cases: [(&[&str], &str); 3] = [
        (
            &["--crops", d, "--align", "112", "--model", "ssh-vgg16"],
            "--align needs landmarks",
        ),
        (
            &["--blur", d, "--mask-scale", "0"],
            "--mask-scale 0 must be",
        ),
        (
            &["--crops", d, "--crop-margin=-1"],
            "--crop-margin -1 must be",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_sshface"))
            .arg("detect")
            .args(args)
            .arg(&img)
            .env("WGPU_BACKEND", "none-such")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(want),
            "{args:?}: {stderr}"
        );
    }
}
