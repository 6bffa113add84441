//! `--blur OUT` / `--draw OUT` for a video: frames written raw into an `ffmpeg` that encodes them at the source's
//! frame rate and copies the source's audio packets unchanged. A writer thread per output keeps the detector busy
//! while FFmpeg encodes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use image::RgbImage;

use super::probe::{self, Rate};

/// One output video.
pub struct Spec<'a> {
    pub path: &'a Path,
    pub source: &'a Path,
    /// The rate the kept frames are shown at (the source's, divided by `--every`).
    pub rate: Rate,
    pub start: Option<f64>,
    pub duration: Option<f64>,
    /// Copy the source's audio streams.
    pub audio: bool,
    /// `--video-codec`: an FFmpeg encoder, with FFmpeg's defaults for it.
    pub codec: Option<&'a str>,
}

pub struct Encoder {
    path: PathBuf,
    size: (u32, u32),
    tx: Option<SyncSender<RgbImage>>,
    writer: Option<JoinHandle<std::io::Result<()>>>,
    log: Option<JoinHandle<String>>,
    child: Child,
}

/// Encoder options when `--video-codec` is not given: H.264 (VP9 for .webm, MPEG-4 part 2 for .avi) at a quality
/// that hides the re-encoding, 4:2:0 with BT.709 colours where the size allows (4:2:0 needs even sides), else
/// FFmpeg's own choice for the container.
fn codec_args(path: &Path, codec: Option<&str>, (w, h): (u32, u32)) -> Vec<String> {
    if let Some(c) = codec {
        return vec!["-c:v".into(), c.into()];
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let chroma = if w % 2 == 0 && h % 2 == 0 {
        "yuv420p"
    } else {
        "yuv444p"
    };
    let bt709 = [
        "-vf",
        "scale=out_color_matrix=bt709:out_range=tv",
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-color_range",
        "tv",
    ];
    let mut a: Vec<&str> = match ext.as_str() {
        "mp4" | "m4v" | "mov" | "mkv" => vec!["-c:v", "libx264", "-crf", "18", "-preset", "medium"],
        "webm" => vec![
            "-c:v",
            "libvpx-vp9",
            "-crf",
            "30",
            "-b:v",
            "0",
            "-row-mt",
            "1",
        ],
        "avi" => return ["-c:v", "mpeg4", "-q:v", "2"].map(String::from).to_vec(),
        _ => return Vec::new(),
    };
    a.extend(["-pix_fmt", chroma]);
    a.extend(bt709);
    a.into_iter().map(String::from).collect()
}

impl Encoder {
    /// Starts `ffmpeg` writing `spec.path` from `w`×`h` RGB frames.
    pub fn start(spec: &Spec, w: u32, h: u32) -> anyhow::Result<Encoder> {
        let mut c = probe::command("ffmpeg");
        c.args(["-nostdin", "-nostats", "-loglevel", "error", "-y"]);
        c.args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            &format!("{w}x{h}"),
        ]);
        c.args(["-framerate", &spec.rate.to_string(), "-i", "pipe:0"]);
        if spec.audio {
            if let Some(s) = spec.start {
                c.args(["-ss", &format!("{s:.6}")]);
            }
            if let Some(d) = spec.duration {
                c.args(["-t", &format!("{d:.6}")]);
            }
            c.arg("-i").arg(spec.source);
        }
        c.args(["-map", "0:v"]);
        if spec.audio {
            c.args(["-map", "1:a", "-c:a", "copy"]);
        }
        c.args(codec_args(spec.path, spec.codec, (w, h)));
        c.arg(spec.path);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| probe::spawn_error("ffmpeg", e))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = sync_channel::<RgbImage>(4);
        let writer = std::thread::spawn(move || {
            for img in rx {
                stdin.write_all(img.as_raw())?;
            }
            stdin.flush()
        });
        let log = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Ok(Encoder {
            path: spec.path.to_path_buf(),
            size: (w, h),
            tx: Some(tx),
            writer: Some(writer),
            log: Some(log),
            child,
        })
    }

    /// Queues one frame; an error (FFmpeg gone) says why.
    pub fn push(&mut self, img: RgbImage) -> Result<(), String> {
        if img.dimensions() != self.size {
            let (w, h) = img.dimensions();
            return Err(format!(
                "video {}: a {w}x{h} frame in a {}x{} output",
                self.path.display(),
                self.size.0,
                self.size.1
            ));
        }
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(img).is_ok());
        if sent {
            Ok(())
        } else {
            Err(self.close().err().unwrap_or_else(|| {
                format!(
                    "video {}: ffmpeg stopped reading frames",
                    self.path.display()
                )
            }))
        }
    }

    /// Ends the stream and waits for FFmpeg to finish the file.
    pub fn finish(mut self) -> Result<(), String> {
        self.close()
    }

    fn close(&mut self) -> Result<(), String> {
        drop(self.tx.take());
        let wrote = self.writer.take().map(|w| w.join());
        let status = self.child.wait();
        let log = self
            .log
            .take()
            .and_then(|l| l.join().ok())
            .unwrap_or_default();
        let why = match (status, wrote) {
            (Ok(s), _) if !s.success() => format!("ffmpeg exited with {s}"),
            (Err(e), _) => format!("cannot wait for ffmpeg: {e}"),
            (_, Some(Ok(Err(e)))) => format!("writing frames to ffmpeg: {e}"),
            (_, Some(Err(_))) => "the frame writer panicked".into(),
            _ => return Ok(()),
        };
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
        let hint = if [
            "not currently supported in container",
            "Could not find tag",
            "in MP4 support is experimental",
        ]
        .iter()
        .any(|m| log.contains(m))
        {
            " (the source's audio codec does not fit this container: use --no-audio, or an output container that \
             holds it, e.g. .mkv)"
        } else {
            ""
        };
        Err(format!(
            "writing video {}: {why}: {tail}{hint}",
            self.path.display()
        ))
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        if self.tx.is_some() {
            let _ = self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_codecs() {
        let a = codec_args(Path::new("o.MP4"), None, (640, 360)).join(" ");
        assert!(
            a.starts_with("-c:v libx264") && a.contains("-pix_fmt yuv420p"),
            "{a}"
        );
        let odd = codec_args(Path::new("o.mkv"), None, (641, 360)).join(" ");
        assert!(odd.contains("-pix_fmt yuv444p"), "{odd}");
        assert!(codec_args(Path::new("o.webm"), None, (2, 2)).contains(&"libvpx-vp9".to_string()));
        assert_eq!(
            codec_args(Path::new("o.mkv"), Some("ffv1"), (2, 2)),
            ["-c:v", "ffv1"]
        );
        assert!(codec_args(Path::new("o.nut"), None, (2, 2)).is_empty());
    }
}
