//! `detect VIDEO` on a clip this test makes with ffmpeg from the repository's test images (lossless FFV1 video,
//! FLAC audio): rows equal `detect` on the same frames as images, `--every`/`--start`/`--duration` pick the right
//! frames, `--blur`/`--draw` outputs keep frame count, rate and audio and blur exactly as the image path does,
//! damaged files keep the rows of the frames before the damage, and a missing ffmpeg is a clear error.

mod common;
mod video_support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sshface::image;
use video_support::*;

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
    let (code, err, _) = run(
        &[
            "--blur",
            "o.mkv",
            "--video-codec",
            "no-such-codec",
            "clip.data",
        ],
        None,
    );
    if ffmpeg() {
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("--video-codec no-such-codec: this ffmpeg has no such encoder"),
            "{err}"
        );
    }
    let (code, err, _) = run(&["--blur", "clip.data", "clip.data"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("would overwrite its input"), "{err}");
}
