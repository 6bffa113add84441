//! The `sshface` binary: JSON schema of `detect`, error handling of unreadable images, `--dump`.

mod common;
mod vgg_support;

use std::process::Command;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn sshface() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sshface"))
}

#[test]
fn detect_prints_json_schema() {
    if common::gpu().is_none() {
        return;
    }
    let img = format!("{DATA}/astronaut.png");
    let out = sshface().args(["detect", &img]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("retinaface-mnv2") && stderr.contains(" on "),
        "adapter and model on stderr: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 1);
    let o = &arr[0];
    assert_eq!(o["image"], img.as_str());
    assert_eq!(o["width"], 512);
    assert_eq!(o["height"], 512);
    let faces = o["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1);
    let f = &faces[0];
    let b: Vec<f64> = f["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let want = [177.3437, 59.942, 270.2441, 181.2588];
    for k in 0..4 {
        assert!((b[k] - want[k]).abs() < 0.05, "box {b:?}");
    }
    assert!((f["score"].as_f64().unwrap() - 0.9999688).abs() < 1e-4);
    let l = f["landmarks"].as_array().unwrap();
    assert_eq!(l.len(), 5);
    assert!(l.iter().all(|p| p.as_array().unwrap().len() == 2));
}

#[test]
fn unreadable_image_is_named_and_others_still_processed() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("cli");
    let bad = dir.join("corrupt.png");
    let png = std::fs::read(format!("{DATA}/camera.png")).unwrap();
    // Cut inside the header: nothing decodes. (A PNG cut inside its pixel data decodes partly, with a warning:
    // tests/robustness.rs.)
    std::fs::write(&bad, &png[..40]).unwrap();
    let missing = dir.join("does-not-exist.jpg");
    let good = format!("{DATA}/camera.png");
    let out = sshface()
        .args([
            "detect",
            bad.to_str().unwrap(),
            &good,
            missing.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must exit non-zero");
    assert!(
        stderr.contains("corrupt.png"),
        "stderr names the corrupt file: {stderr}"
    );
    assert!(
        stderr.contains("does-not-exist.jpg"),
        "stderr names the missing file: {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "exit 1: some images unreadable");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is still JSON");
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3, "one row per image, in input order: {v}");
    assert_eq!(arr[1]["image"], good.as_str());
    assert_eq!(arr[1]["faces"].as_array().unwrap().len(), 1);
    for (row, name) in [(&arr[0], "corrupt.png"), (&arr[2], "does-not-exist.jpg")] {
        assert!(row["image"].as_str().unwrap().ends_with(name), "{row}");
        assert!(
            row["error"].as_str().unwrap().contains(name),
            "the error row names it: {row}"
        );
        assert!(row.get("faces").is_none(), "{row}");
    }
}

#[test]
fn dump_writes_heads_in_golden_layout() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("dump");
    let path = dir.join("heads.safetensors");
    let out = sshface()
        .args([
            "detect",
            // The golden heads are fp32 (2e-4); `auto` would take f16-coop where the adapter has it.
            "--precision",
            "f32",
            "--dump",
            path.to_str().unwrap(),
            &format!("{DATA}/astronaut.png"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(&path).unwrap();
    let want = std::fs::read(format!("{DATA}/astronaut.heads.safetensors")).unwrap();
    let got = safetensors::SafeTensors::deserialize(&got).unwrap();
    let want = safetensors::SafeTensors::deserialize(&want).unwrap();
    for (name, tol) in [
        ("cls_logits", 2e-4),
        ("bbox", 2e-4),
        ("landm", 2e-4),
        ("priors", 1e-6),
    ] {
        let (g, w) = (got.tensor(name).unwrap(), want.tensor(name).unwrap());
        assert_eq!(g.shape(), w.shape(), "{name} shape");
        assert_eq!(g.dtype(), safetensors::Dtype::F32);
        let f = |b: &[u8]| {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect::<Vec<_>>()
        };
        common::assert_close(name, &f(g.data()), &f(w.data()), tol, 0.0);
    }
}

#[test]
fn bad_arguments_are_errors() {
    let out = sshface()
        .args(["detect", "--score", "2", "x.png"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = sshface()
        .args(["detect", "--model", "nope", "x.png"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

/// `--model ssh-vgg16 --weights F --scale S --dump F`: landmarks null, and the dump holds the spec's tensors with
/// the spec's shapes (97×75 at s = 1: L4 = 10×13, L5 = 5×7, L6 = 3×4).
#[test]
fn vgg_detect_and_dump() {
    if common::gpu().is_none() {
        return;
    }
    let weights = vgg_support::write(
        "cli_vgg_random",
        &vgg_support::random_weights(1, &vgg_support::GAINS),
    );
    let dir = common::scratch("vgg");
    let img = dir.join("noise.png");
    vgg_support::image(3, 97, 75).save(&img).unwrap();
    let dump = dir.join("vgg_dump.safetensors");
    let out = sshface()
        .args([
            "detect",
            "--model",
            "ssh-vgg16",
            "--weights",
            weights.to_str().unwrap(),
            "--scale",
            "1",
            "--score",
            "0.05",
        ])
        .args(["--dump", dump.to_str().unwrap(), img.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let faces = v[0]["faces"].as_array().unwrap();
    assert!(
        !faces.is_empty(),
        "random weights give some detections above 0.05"
    );
    assert!(faces
        .iter()
        .all(|f| f["landmarks"].is_null() && f["box"].as_array().unwrap().len() == 4));
    let bytes = std::fs::read(&dump).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let want: [(&str, &[usize]); 10] = [
        ("m1.cls_prob", &[10, 13, 2]),
        ("m2.cls_prob", &[5, 7, 2]),
        ("m3.cls_prob", &[3, 4, 2]),
        ("m1.bbox_pred", &[8, 10, 13]),
        ("m2.bbox_pred", &[8, 5, 7]),
        ("m3.bbox_pred", &[8, 3, 4]),
        ("conv4_3", &[512, 10, 13]),
        ("conv5_3", &[512, 5, 7]),
        ("conv4_fuse_final", &[128, 10, 13]),
        ("pool6", &[512, 3, 4]),
    ];
    for (name, shape) in want {
        let t = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("dump lacks {name}"));
        assert_eq!(t.shape(), shape, "{name}");
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
    }
    assert_eq!(st.names().len(), 10);
    // --pyramid is an ssh-vgg16 protocol (--scale applies to both models).
    let out = sshface()
        .args(["detect", "--pyramid", img.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// An image whose rows are too wide for the device's storage bindings (even in row strips) fails with an error
/// naming it; the other images of the same batch are still detected.
#[test]
fn too_large_image_fails_alone() {
    let Some(ctx) = common::gpu() else { return };
    let dir = common::scratch("large");
    // Every layer runs in row strips, so only a row too wide is refused: one row of block1.dw reads 3 rows of
    // block1.expand (96 channels at half width: 3 · 96 · W/2 · 4 = 576·W bytes), past the binding for a wide enough
    // image of one row.
    let width = (ctx.max_binding() / 576) as u32 + 1024;
    let big = dir.join("huge.png");
    image::RgbImage::from_pixel(width, 1, image::Rgb([90, 120, 150]))
        .save(&big)
        .unwrap();
    let good = format!("{DATA}/camera.png");
    let out = sshface()
        .args(["detect", big.to_str().unwrap(), &good])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("huge.png") && stderr.contains("max storage binding"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    assert!(
        v[0]["error"]
            .as_str()
            .unwrap()
            .contains("max storage binding"),
        "{v}"
    );
    assert_eq!(v[1]["image"], good.as_str());
    assert_eq!(v[1]["faces"].as_array().unwrap().len(), 1);
}

/// Unusual but valid images: 1×1, RGBA, 16-bit grayscale, a 1000×1 strip. Each gets a JSON entry and exit 0.
#[test]
fn unusual_images_are_processed() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("odd");
    let paths = [
        dir.join("one.png"),
        dir.join("rgba.png"),
        dir.join("gray16.png"),
        dir.join("strip.png"),
    ];
    image::RgbImage::from_pixel(1, 1, image::Rgb([10, 20, 30]))
        .save(&paths[0])
        .unwrap();
    image::RgbaImage::from_pixel(33, 65, image::Rgba([10, 20, 30, 100]))
        .save(&paths[1])
        .unwrap();
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(40, 30, image::Luma([40_000]))
        .save(&paths[2])
        .unwrap();
    image::GrayImage::from_pixel(1000, 1, image::Luma([200]))
        .save(&paths[3])
        .unwrap();
    let out = sshface().arg("detect").args(&paths).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    let dims: Vec<(u64, u64)> = arr
        .iter()
        .map(|o| (o["width"].as_u64().unwrap(), o["height"].as_u64().unwrap()))
        .collect();
    assert_eq!(dims, [(1, 1), (33, 65), (40, 30), (1000, 1)]);
    assert!(
        arr.iter()
            .all(|o| o["faces"].as_array().unwrap().is_empty()),
        "{v}"
    );
}

/// `eval` writes one WIDER FACE result file per image (name, count, `x1 y1 w h score` with truncation), names a
/// corrupt image, and still writes the others.
#[test]
fn eval_writes_wider_result_files() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("eval");
    let (images, out) = (dir.join("images"), dir.join("out"));
    std::fs::create_dir_all(images.join("0--Parade")).unwrap();
    std::fs::create_dir_all(images.join("1--Handshaking")).unwrap();
    std::fs::copy(
        format!("{DATA}/astronaut.png"),
        images.join("0--Parade/0_Parade_1.png"),
    )
    .unwrap();
    std::fs::write(
        images.join("1--Handshaking/1_Handshaking_2.jpg"),
        b"not a jpeg",
    )
    .unwrap();
    let o = sshface()
        .args([
            "eval",
            "--images",
            images.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--score",
            "0.5",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a corrupt image makes the exit non-zero"
    );
    assert!(stderr.contains("1_Handshaking_2.jpg"), "{stderr}");
    let txt = std::fs::read_to_string(out.join("0--Parade/0_Parade_1.txt")).unwrap();
    let lines: Vec<&str> = txt.lines().collect();
    assert_eq!(lines[0], "0_Parade_1");
    assert_eq!(lines[1], "1");
    // Golden box (177.3437, 59.942, 270.2441, 181.2588): int(x1) int(y1) int(x2)-int(x1) int(y2)-int(y1) score.
    let f: Vec<&str> = lines[2].split(' ').collect();
    assert_eq!(&f[..4], ["177", "59", "93", "122"], "{txt}");
    assert!((f[4].parse::<f64>().unwrap() - 0.9999688).abs() < 1e-4);
    assert!(!out.join("1--Handshaking/1_Handshaking_2.txt").exists());
}

/// Folders are searched recursively (name order) and `--list -` reads more paths from standard input; a listed
/// missing file is named and the rest is processed.
#[test]
fn folders_and_lists() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("folders");
    std::fs::create_dir_all(dir.join("b/nested")).unwrap();
    std::fs::copy(format!("{DATA}/camera.png"), dir.join("b/nested/2.png")).unwrap();
    std::fs::copy(format!("{DATA}/camera.png"), dir.join("b/1.png")).unwrap();
    std::fs::write(dir.join("b/notes.txt"), "not an image").unwrap();
    let listed = format!(
        "{DATA}/astronaut.png\n\n{}\n",
        dir.join("missing.png").display()
    );
    let mut child = sshface()
        .args(["detect", "--list", "-", dir.join("b").to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(listed.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("missing.png"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["image"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names[0].ends_with("b/1.png")
            && names[1].ends_with("b/nested/2.png")
            && names[2].ends_with("astronaut.png")
            && names[3].ends_with("missing.png"),
        "{names:?}"
    );
    assert!(
        v[3]["error"].is_string() && v[2]["faces"].as_array().unwrap().len() == 1,
        "{v}"
    );
}
