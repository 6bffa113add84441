//! FFmpeg's programs as subprocesses: finding them (a clear error naming the program and how to install it) and
//! what `ffprobe` says about a video.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::Deserialize;

/// How to get FFmpeg, for the error when a program is missing.
pub const INSTALL: &str = "video input needs FFmpeg's `ffmpeg` and `ffprobe` programs on PATH: install FFmpeg \
(Debian/Ubuntu: sudo apt-get install ffmpeg; Fedora: sudo dnf install ffmpeg; macOS: brew install ffmpeg; Windows: \
winget install ffmpeg) or add its folder to PATH";

/// A command for `program` (`ffmpeg` or `ffprobe`) with FFmpeg's banner off, in a process group of its own: a
/// Ctrl-C at the terminal reaches sshface only, which then ends its FFmpeg processes in order (the encoders finish
/// their files) instead of FFmpeg stopping under it.
pub fn command(program: &str) -> Command {
    let mut c = Command::new(program);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    c.arg("-hide_banner");
    c
}

/// The error of a failed spawn: a missing program names it and how to install FFmpeg.
pub fn spawn_error(program: &str, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!("`{program}` not found: {INSTALL}")
    } else {
        anyhow::anyhow!("cannot run `{program}`: {e}")
    }
}

/// A frame rate as FFmpeg writes it (`30000/1001`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub num: u64,
    pub den: u64,
}

impl Rate {
    pub fn parse(s: &str) -> Option<Rate> {
        let (n, d) = s.split_once('/').unwrap_or((s, "1"));
        let r = Rate {
            num: n.trim().parse().ok()?,
            den: d.trim().parse().ok()?,
        };
        (r.num > 0 && r.den > 0).then_some(r)
    }

    pub fn fps(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// The rate of every `n`-th frame.
    pub fn every(self, n: u64) -> Rate {
        Rate {
            num: self.num,
            den: self.den * n,
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// What the rest of the run needs to know about a video.
#[derive(Debug)]
pub struct Probe {
    pub codec: String,
    pub container: String,
    pub width: u32,
    pub height: u32,
    /// The frame rate the outputs are encoded at: the average rate, else the stream's base rate.
    pub rate: Option<Rate>,
    pub has_audio: bool,
    /// Seconds, from the stream or else the container.
    pub duration: Option<f64>,
    /// The frame count the container states (mp4/mov), when it does.
    pub frames: Option<u64>,
}

#[derive(Deserialize)]
struct Out {
    #[serde(default)]
    streams: Vec<Stream>,
    format: Option<Format>,
}

#[derive(Deserialize)]
struct Stream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    nb_frames: Option<String>,
    duration: Option<String>,
    disposition: Option<Disposition>,
}

#[derive(Deserialize)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Deserialize)]
struct Format {
    format_name: Option<String>,
    duration: Option<String>,
}

/// Runs ffprobe on `path`; the error names the video and quotes ffprobe's reason.
pub fn probe(path: &Path) -> anyhow::Result<Result<Probe, String>> {
    let out = command("ffprobe")
        .args(["-v", "error", "-of", "json", "-show_entries"])
        .arg(
            "stream=codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate,nb_frames,duration:\
             stream_disposition=attached_pic:format=format_name,duration",
        )
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error("ffprobe", e))?;
    let name = path.display();
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Ok(Err(format!(
            "video {name}: ffprobe cannot read it ({}): {why}",
            out.status
        )));
    }
    let parsed: Out = match serde_json::from_slice(&out.stdout) {
        Ok(p) => p,
        Err(e) => return Ok(Err(format!("video {name}: unexpected ffprobe output: {e}"))),
    };
    Ok(from_json(parsed).map_err(|e| format!("video {name}: {e}")))
}

fn from_json(o: Out) -> Result<Probe, String> {
    let num = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let has_audio = o
        .streams
        .iter()
        .any(|s| s.codec_type.as_deref() == Some("audio"));
    // Cover art is a video stream of one picture: the first real one is what ffmpeg's `0:v:0` would skip to.
    let v = o
        .streams
        .iter()
        .find(|s| {
            s.codec_type.as_deref() == Some("video")
                && s.disposition.as_ref().is_none_or(|d| d.attached_pic == 0)
        })
        .ok_or_else(|| {
            let kinds: Vec<String> = o
                .streams
                .iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        s.codec_type.as_deref().unwrap_or("?"),
                        s.codec_name.as_deref().unwrap_or("?")
                    )
                })
                .collect();
            format!(
                "no video stream (ffprobe found: {})",
                if kinds.is_empty() {
                    "nothing".into()
                } else {
                    kinds.join(", ")
                }
            )
        })?;
    let rate = v
        .avg_frame_rate
        .as_deref()
        .and_then(Rate::parse)
        .or_else(|| v.r_frame_rate.as_deref().and_then(Rate::parse));
    let format = o.format.as_ref();
    Ok(Probe {
        codec: v.codec_name.clone().unwrap_or_else(|| "?".into()),
        container: format
            .and_then(|f| f.format_name.clone())
            .unwrap_or_else(|| "?".into()),
        width: v.width.unwrap_or(0),
        height: v.height.unwrap_or(0),
        rate,
        has_audio,
        duration: num(&v.duration).or_else(|| format.and_then(|f| num(&f.duration))),
        frames: v.nb_frames.as_deref().and_then(|n| n.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffprobe_json() {
        let j = r#"{"streams":[{"codec_type":"video","codec_name":"mjpeg","width":8,"height":8,
            "avg_frame_rate":"0/0","r_frame_rate":"90000/1","disposition":{"attached_pic":1}},
            {"codec_type":"video","codec_name":"h264","width":640,"height":360,"avg_frame_rate":"30000/1001",
            "r_frame_rate":"30000/1001","nb_frames":"300"},{"codec_type":"audio","codec_name":"aac"}],
            "format":{"format_name":"mov,mp4","duration":"10.010000"}}"#;
        let p = from_json(serde_json::from_str(j).unwrap()).unwrap();
        assert_eq!((p.codec.as_str(), p.width, p.height), ("h264", 640, 360));
        assert_eq!(
            p.rate,
            Some(Rate {
                num: 30000,
                den: 1001
            })
        );
        assert!(p.has_audio);
        assert_eq!((p.duration, p.frames), (Some(10.01), Some(300)));
        let audio = r#"{"streams":[{"codec_type":"audio","codec_name":"opus"}],"format":{}}"#;
        let e = from_json(serde_json::from_str(audio).unwrap()).unwrap_err();
        assert!(
            e.contains("no video stream") && e.contains("audio opus"),
            "{e}"
        );
        assert_eq!(Rate::parse("0/0"), None);
        assert_eq!(Rate::parse("25").unwrap().every(5).to_string(), "25/5");
    }
}
