//! Shared by tests/video.rs: the clips it makes with ffmpeg from tests/data, running `sshface detect` on them, the
//! reference rows of the same frames as PNG images, and reading videos back through ffmpeg and ffprobe.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use sshface::image::{self, imageops, RgbImage};

use super::common;

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
pub const FRAMES: usize = 11;
/// Frames of the clip whose damaged copies are tested: FFmpeg's decoder runs up to about a dozen frames ahead of
/// its output, so the damage must come later than that for intact frames to remain before it.
pub const LONG: usize = 40;
pub const SIDE: u32 = 224;

/// Whether ffmpeg can run here; in CI (`SSHFACE_REQUIRE_GPU=1`) its absence fails the test instead of skipping.
pub fn ffmpeg() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("SSHFACE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("SSHFACE_REQUIRE_GPU=1 but no ffmpeg on PATH (.ci/mesa-root installs it in the test root)");
        }
        eprintln!("SKIP (no ffmpeg on PATH)");
    }
    ok
}

pub fn tool(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Frame k: a 224×224 window of test image k mod 3 (downscaled to 256), shifted by k, so every frame differs.
pub fn frame(k: usize) -> RgbImage {
    static SOURCES: OnceLock<Vec<RgbImage>> = OnceLock::new();
    let src = SOURCES.get_or_init(|| {
        ["astronaut.png", "grace_hopper.jpg", "camera.png"]
            .iter()
            .map(|n| {
                let img = image::open(Path::new(DATA).join(n)).unwrap().to_rgb8();
                let sq = imageops::crop_imm(&img, 0, 0, 512, 512).to_image();
                imageops::resize(&sq, 256, 256, imageops::FilterType::Triangle)
            })
            .collect()
    });
    let (x, y) = ((k * 3 % 32) as u32, (k * 2 % 32) as u32);
    imageops::crop_imm(&src[k % 3], x, y, SIDE, SIDE).to_image()
}

/// Writes `frames` as `<prefix>NN.png` and encodes them into `<prefix>.mkv`: FFV1 version 3 with slice CRCs (so
/// damage is detectable) at 10 fps, with a 440 Hz FLAC tone as long as the video.
pub fn clip(d: &Path, prefix: &str, frames: &[RgbImage]) {
    for (k, f) in frames.iter().enumerate() {
        f.save(d.join(format!("{prefix}{k:02}.png"))).unwrap();
    }
    let pattern = d.join(format!("{prefix}%02d.png"));
    let out = d.join(format!("{prefix}.mkv"));
    let tone = format!(
        "sine=frequency=440:sample_rate=8000:duration={}",
        frames.len() as f64 / 10.0
    );
    #[rustfmt::skip]
    let args = [
        "-hide_banner", "-loglevel", "error", "-y", "-framerate", "10", "-i", pattern.to_str().unwrap(),
        "-f", "lavfi", "-i", &tone, "-c:v", "ffv1", "-level", "3", "-slicecrc", "1", "-c:a", "flac",
        out.to_str().unwrap(),
    ];
    tool("ffmpeg", &args);
}

/// The folder with `fNN.png` and their clip `f.mkv` (11 frames, 224×224), and `gNN.png` and `g.mkv` (40 frames,
/// 128×128) for the damaged copies.
pub fn fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = common::scratch("video");
        clip(&d, "f", &(0..FRAMES).map(frame).collect::<Vec<_>>());
        let small = |k| imageops::resize(&frame(k), 128, 128, imageops::FilterType::Triangle);
        clip(&d, "g", &(0..LONG).map(small).collect::<Vec<_>>());
        d
    })
}

pub fn sshface(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sshface"))
        .current_dir(dir)
        .arg("detect")
        .args(args)
        .output()
        .unwrap()
}

pub fn ok(dir: &Path, args: &[&str]) -> (String, String) {
    let out = sshface(dir, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

pub fn jsonl(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `detect` on the frames as PNG images: the reference rows.
pub fn image_rows() -> &'static [Value] {
    static ROWS: OnceLock<Vec<Value>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let names: Vec<String> = (0..FRAMES).map(|k| format!("f{k:02}.png")).collect();
        let args: Vec<&str> = names.iter().map(String::as_str).collect();
        let (out, _) = ok(fixture(), &args);
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    })
}

/// Checks video rows against the image rows of frames `want` (frame index, time, size, identical faces).
pub fn same_as_images(rows: &[Value], want: &[(u64, f64, usize)]) {
    assert_eq!(rows.len(), want.len(), "{rows:?}");
    for (r, &(frame, time, img)) in rows.iter().zip(want) {
        assert_eq!(r["image"], "f.mkv");
        assert_eq!(r["frame"], frame, "{r}");
        assert!((r["time"].as_f64().unwrap() - time).abs() < 1e-6, "{r}");
        assert_eq!(
            (r["width"].as_u64(), r["height"].as_u64()),
            (Some(SIDE as u64), Some(SIDE as u64))
        );
        assert_eq!(
            r["faces"],
            image_rows()[img]["faces"],
            "frame {frame} vs f{img:02}.png"
        );
    }
}

pub fn probe(path: &Path, entries: &str) -> Vec<Value> {
    let out = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-of",
            "json",
            "-show_entries",
            entries,
            path.to_str().unwrap(),
        ],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"].as_array().unwrap().clone()
}

/// The MD5 of a file's audio packets, copied without decoding.
pub fn audio_md5(path: &Path) -> String {
    let out = tool(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            path.to_str().unwrap(),
            "-map",
            "0:a",
            "-c",
            "copy",
            "-f",
            "md5",
            "-",
        ],
    );
    String::from_utf8(out.stdout).unwrap()
}

/// All frames of a video as RGB.
pub fn decode(path: &Path) -> Vec<RgbImage> {
    let out = tool(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            path.to_str().unwrap(),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
    );
    let n = (SIDE * SIDE * 3) as usize;
    assert_eq!(out.stdout.len() % n, 0);
    out.stdout
        .chunks(n)
        .map(|c| RgbImage::from_raw(SIDE, SIDE, c.to_vec()).unwrap())
        .collect()
}

pub fn boxes(row: &Value) -> Vec<[f64; 4]> {
    row["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| std::array::from_fn(|k| f["box"][k].as_f64().unwrap()))
        .collect()
}

/// Whether pixel (x, y) lies within twice the size of any box (about its centre).
pub fn near(b: &[[f64; 4]], x: u32, y: u32) -> bool {
    b.iter().any(|&[x1, y1, x2, y2]| {
        let (cx, cy, w, h) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1);
        (x as f64 - cx).abs() <= w && (y as f64 - cy).abs() <= h
    })
}
