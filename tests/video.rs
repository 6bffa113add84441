//! `detect VIDEO` on a clip this test makes with ffmpeg from the repository's test images (lossless FFV1 video,
//! FLAC audio): rows equal `detect` on the same frames as images, `--every`/`--start`/`--duration` pick the right
//! frames, `--blur`/`--draw` outputs keep frame count, rate and audio and blur exactly as the image path does,
//! damaged files keep the rows of the frames before the damage, and a missing ffmpeg is a clear error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use sshface::image::{self, imageops, RgbImage};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const FRAMES: usize = 11;
/// Frames of the clip whose damaged copies are tested: FFmpeg's decoder runs up to about a dozen frames ahead of
/// its output, so the damage must come later than that for intact frames to remain before it.
const LONG: usize = 40;
const SIDE: u32 = 224;

/// Whether ffmpeg can run here; in CI (`SSHFACE_REQUIRE_GPU=1`) its absence fails the test instead of skipping.
fn ffmpeg() -> bool {
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

fn tool(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Frame k: a 224×224 window of test image k mod 3 (downscaled to 256), shifted by k, so every frame differs.
fn frame(k: usize) -> RgbImage {
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
fn clip(d: &Path, prefix: &str, frames: &[RgbImage]) {
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
fn fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = common::scratch("video");
        clip(&d, "f", &(0..FRAMES).map(frame).collect::<Vec<_>>());
        let small = |k| imageops::resize(&frame(k), 128, 128, imageops::FilterType::Triangle);
        clip(&d, "g", &(0..LONG).map(small).collect::<Vec<_>>());
        d
    })
}

fn sshface(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sshface"))
        .current_dir(dir)
        .arg("detect")
        .args(args)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> (String, String) {
    let out = sshface(dir, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

fn jsonl(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `detect` on the frames as PNG images: the reference rows.
fn image_rows() -> &'static [Value] {
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
fn same_as_images(rows: &[Value], want: &[(u64, f64, usize)]) {
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

#[test]
fn rows_equal_images_and_every_start_duration_pick_frames() {
    if common::gpu().is_none() || !ffmpeg() {
        return;
    }
    let d = fixture();
    let faces: usize = image_rows()
        .iter()
        .map(|r| r["faces"].as_array().unwrap().len())
        .sum();
    assert!(faces >= 7, "the frames hold faces: {faces}");
    let (out, err) = ok(d, &["f.mkv"]);
    let all: Vec<(u64, f64, usize)> = (0..FRAMES)
        .map(|k| (k as u64, k as f64 / 10.0, k))
        .collect();
    same_as_images(&jsonl(&out), &all);
    assert!(
        err.contains(&format!("{FRAMES} frames, {faces} faces")) && err.contains("frames/s"),
        "{err}"
    );

    let (out, _) = ok(d, &["--every", "5", "--batch", "2", "f.mkv"]);
    same_as_images(&jsonl(&out), &[(0, 0.0, 0), (5, 0.5, 5), (10, 1.0, 10)]);

    // From 0.3 s for 0.45 s: frames at 0.3 … 0.7, every second one; indexes count from the start point.
    let (out, _) = ok(
        d,
        &[
            "--start",
            "0.3",
            "--duration",
            "0.45",
            "--every",
            "2",
            "--format",
            "csv",
            "f.mkv",
        ],
    );
    let mut lines = out.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("image,frame,time,width,height,face,x1,"));
    let mut rows: Vec<Value> = Vec::new();
    for l in lines {
        let c: Vec<&str> = l.split(',').collect();
        let (frame, time): (u64, f64) = (c[1].parse().unwrap(), c[2].parse().unwrap());
        if rows.last().is_none_or(|r| r["frame"] != frame) {
            rows.push(serde_json::json!({"image": c[0], "frame": frame, "time": time,
                "width": c[3].parse::<u64>().unwrap(), "height": c[4].parse::<u64>().unwrap(), "faces": []}));
        }
        if !c[5].is_empty() {
            let v: Vec<f64> = c[6..21].iter().map(|s| s.parse().unwrap()).collect();
            let lm: Vec<[f64; 2]> = v[5..].chunks(2).map(|p| [p[0], p[1]]).collect();
            let face = serde_json::json!({"box": &v[..4], "score": v[4], "landmarks": lm});
            rows.last_mut().unwrap()["faces"]
                .as_array_mut()
                .unwrap()
                .push(face);
        }
    }
    // CSV numbers print f32 like JSON does, so they parse back to the same values.
    same_as_images(&rows, &[(0, 0.3, 3), (2, 0.5, 5), (4, 0.7, 7)]);
}

fn probe(path: &Path, entries: &str) -> Vec<Value> {
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
fn audio_md5(path: &Path) -> String {
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
fn decode(path: &Path) -> Vec<RgbImage> {
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

fn boxes(row: &Value) -> Vec<[f64; 4]> {
    row["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| std::array::from_fn(|k| f["box"][k].as_f64().unwrap()))
        .collect()
}

/// Whether pixel (x, y) lies within twice the size of any box (about its centre).
fn near(b: &[[f64; 4]], x: u32, y: u32) -> bool {
    b.iter().any(|&[x1, y1, x2, y2]| {
        let (cx, cy, w, h) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1);
        (x as f64 - cx).abs() <= w && (y as f64 - cy).abs() <= h
    })
}

#[test]
fn blurred_and_drawn_videos_keep_frames_rate_and_audio() {
    if common::gpu().is_none() || !ffmpeg() {
        return;
    }
    let d = fixture();
    let (blur, draw, imgs) = (
        d.join("out/blur.mkv"),
        d.join("out/draw.mkv"),
        d.join("img_blur"),
    );
    let s = |p: &Path| p.to_str().unwrap().to_string();
    ok(
        d,
        &[
            "--blur",
            &s(&blur),
            "--draw",
            &s(&draw),
            "--video-codec",
            "ffv1",
            "f.mkv",
        ],
    );
    let names: Vec<String> = (0..FRAMES).map(|k| format!("f{k:02}.png")).collect();
    let mut args = vec!["--blur", imgs.to_str().unwrap()];
    args.extend(names.iter().map(String::as_str));
    ok(d, &args);

    let clip = d.join("f.mkv");
    let entries = "stream=codec_type,codec_name,r_frame_rate,nb_read_frames,sample_rate,channels";
    let src = probe(&clip, entries);
    for out in [&blur, &draw] {
        let got = probe(out, entries);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0]["codec_type"], "video");
        assert_eq!(got[0]["nb_read_frames"], FRAMES.to_string());
        assert_eq!(got[0]["r_frame_rate"], src[0]["r_frame_rate"]);
        assert_eq!(got[1], src[1], "the audio stream");
        assert_eq!(
            audio_md5(out),
            audio_md5(&clip),
            "audio packets copied unchanged"
        );
    }
    let (blurred, drawn) = (decode(&blur), decode(&draw));
    for k in 0..FRAMES {
        let orig = frame(k);
        let b = boxes(&image_rows()[k]);
        // The GPU blur of the video frame is the image path's, byte for byte.
        let want = image::open(imgs.join(&names[k])).unwrap().to_rgb8();
        assert!(
            blurred[k] == want,
            "frame {k}: blurred pixels differ from detect --blur on f{k:02}.png"
        );
        for (x, y, p) in orig.enumerate_pixels() {
            if !near(&b, x, y) {
                assert_eq!(
                    blurred[k].get_pixel(x, y),
                    p,
                    "frame {k}: far pixel ({x}, {y}) changed by --blur"
                );
                assert_eq!(
                    drawn[k].get_pixel(x, y),
                    p,
                    "frame {k}: far pixel ({x}, {y}) changed by --draw"
                );
            }
        }
        for &[x1, y1, x2, y2] in &b {
            let (cx, cy) = (((x1 + x2) / 2.0) as u32, ((y1 + y2) / 2.0) as u32);
            let diff: i64 = (cy - 8..cy + 8)
                .flat_map(|y| (cx - 8..cx + 8).map(move |x| (x, y)))
                .map(|(x, y)| {
                    let (a, o) = (blurred[k].get_pixel(x, y).0, orig.get_pixel(x, y).0);
                    (0..3)
                        .map(|c| (a[c] as i64 - o[c] as i64).abs())
                        .sum::<i64>()
                })
                .sum();
            assert!(
                diff > 16 * 16 * 3 * 4,
                "frame {k}: face at ({cx}, {cy}) not blurred (sum |diff| {diff})"
            );
            let edge = drawn[k].get_pixel(x1.round() as u32, cy).0;
            assert_eq!(
                edge,
                [0, 255, 0],
                "frame {k}: no box edge drawn at x = {x1}"
            );
        }
    }

    // --every 5 --no-audio: 3 frames at 2 fps, no audio; the default H.264 in .mp4 (4:2:0).
    let quiet = d.join("out/quiet.mp4");
    ok(
        d,
        &["--blur", &s(&quiet), "--every", "5", "--no-audio", "f.mkv"],
    );
    let got = probe(
        &quiet,
        "stream=codec_type,codec_name,r_frame_rate,nb_read_frames,pix_fmt",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["codec_name"], "h264");
    assert_eq!(got[0]["pix_fmt"], "yuv420p");
    assert_eq!(got[0]["r_frame_rate"], "2/1");
    assert_eq!(got[0]["nb_read_frames"], "3");
}

/// Runs detect on damaged inputs: exit 1, rows of frames before the damage (equal to the intact clip's), then an
/// error row naming the file.
#[test]
fn damaged_videos_keep_the_frames_before_the_damage() {
    if common::gpu().is_none() || !ffmpeg() {
        return;
    }
    let d = fixture();
    let (out, _) = ok(d, &["g.mkv"]);
    let intact = jsonl(&out);
    assert_eq!(intact.len(), LONG);
    let bytes = std::fs::read(d.join("g.mkv")).unwrap();
    std::fs::write(d.join("cut.mkv"), &bytes[..bytes.len() * 6 / 10]).unwrap();
    let mut bad = bytes.clone();
    let at = bytes.len() * 85 / 100;
    bad[at..at + 500]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i * 37 % 251) as u8);
    std::fs::write(d.join("corrupt.mkv"), &bad).unwrap();
    std::fs::write(d.join("junk.mp4"), b"this is not a video at all").unwrap();
    let out = sshface(d, &["cut.mkv", "corrupt.mkv", "junk.mp4"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let rows = jsonl(&String::from_utf8(out.stdout).unwrap());
    let mut k = 0;
    // The cut file ends inside a frame; in the corrupt one FFV1's slice CRC fails at about frame 34 and decoding
    // stops there: every row written is an intact frame's.
    for video in ["cut.mkv", "corrupt.mkv"] {
        let n = rows[k..]
            .iter()
            .take_while(|r| r.get("frame").is_some())
            .count();
        assert!((1..LONG).contains(&n), "{video}: {n} frame rows\n{err}");
        for (j, r) in rows[k..k + n].iter().enumerate() {
            assert_eq!(r["image"], video);
            assert_eq!(r["frame"], j as u64);
            assert_eq!(r["time"], intact[j]["time"]);
            assert_eq!(r["faces"], intact[j]["faces"], "{video} frame {j}");
        }
        let e = &rows[k + n];
        assert_eq!(e["image"], video, "{e}");
        let msg = e["error"].as_str().unwrap();
        assert!(
            msg.contains(video) && msg.contains("damaged or truncated"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("{n} frames decoded before the damage")),
            "{msg}"
        );
        assert!(err.contains(msg), "{err}");
        k += n + 1;
    }
    assert_eq!(rows[k]["image"], "junk.mp4");
    let msg = rows[k]["error"].as_str().unwrap();
    assert!(msg.contains("junk.mp4") && msg.contains("ffprobe"), "{msg}");
    assert_eq!(rows.len(), k + 1);
}

#[test]
fn missing_ffmpeg_and_bad_combinations_are_usage_errors() {
    let d = common::scratch("video_usage");
    // An MP4 signature is enough: the checks run before any decoding.
    let mut mp4 = vec![0, 0, 0, 0x18];
    mp4.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2");
    std::fs::write(d.join("clip.data"), &mp4).unwrap();
    std::fs::copy(Path::new(DATA).join("astronaut.png"), d.join("face.png")).unwrap();
    let empty = d.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let run = |args: &[&str], path: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sshface"));
        c.current_dir(&d).arg("detect").args(args);
        if let Some(p) = path {
            c.env("PATH", p);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.stdout,
        )
    };
    let (code, err, stdout) = run(&["clip.data"], Some(&empty));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("`ffmpeg` not found") && err.contains("apt-get install ffmpeg"),
        "{err}"
    );
    assert!(stdout.is_empty());
    let (code, err, _) = run(&["clip.data", "face.png"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("clip.data is a video and face.png is not"),
        "{err}"
    );
    let (code, err, _) = run(&["--out", "o", "clip.data"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--out applies to images"), "{err}");
    let (code, err, _) = run(&["--every", "2", "face.png"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--every applies to video input"), "{err}");
    let (code, err, _) = run(&["--blur", "clip.data", "clip.data"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("would overwrite its input"), "{err}");
}
