//! Decoding through `ffmpeg`: raw RGB24 frames on its stdout; on its stderr, at log level info, the `showinfo`
//! filter's line for every frame (its timestamp and size, written before the frame reaches the pipe) and any error
//! FFmpeg reports (a damaged or truncated file). Runs on its own thread, ahead of the detector.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};
use std::sync::mpsc::{channel, Receiver, SyncSender};

use image::RgbImage;
use indicatif::ProgressBar;

use super::super::buckets::{self, Prepared};
use super::super::say;
use super::probe::{self, Rate};

/// What to decode.
pub struct Spec<'a> {
    pub path: &'a Path,
    pub every: u64,
    pub start: Option<f64>,
    pub duration: Option<f64>,
    pub max_side: Option<u32>,
    /// For frames without a timestamp: their time from the previous one.
    pub rate: Option<Rate>,
    /// The video codec (ffprobe's name), which tells decoder errors from container errors in FFmpeg's log.
    pub codec: &'a str,
}

/// One decoded frame, ready for the detector.
pub struct Frame {
    /// Its index among the frames decoded from the start point (`--start`, else the file's beginning).
    pub index: u64,
    /// Seconds from the beginning of the file.
    pub time: f64,
    pub p: Prepared,
}

/// A line of FFmpeg's log, as far as decoding cares.
#[derive(Debug, PartialEq)]
enum Log {
    TimeBase(i64, i64),
    Frame {
        pts: Option<i64>,
        w: u32,
        h: u32,
    },
    /// An error, and whether the video decoder reported it (rather than the container or FFmpeg itself).
    Error(String, bool),
    Other,
}

/// How the frame loop ended.
enum End {
    /// FFmpeg closed its log: every frame was read.
    Eof,
    /// The stream broke off (decoder damage, a short frame): FFmpeg is still running.
    Broken(String),
    /// The receiver is gone.
    Gone,
}

/// The `ffmpeg` decoding `spec` (spawned here, so that a missing program is an error before any work).
pub struct Decoder {
    child: Child,
}

impl Decoder {
    pub fn spawn(spec: &Spec) -> anyhow::Result<Decoder> {
        let mut c = probe::command("ffmpeg");
        c.args(["-nostdin", "-nostats", "-loglevel", "repeat+level+info"]);
        if let Some(s) = spec.start {
            c.args(["-ss", &format!("{s:.6}")]);
        }
        if let Some(d) = spec.duration {
            c.args(["-t", &format!("{d:.6}")]);
        }
        c.arg("-i").arg(spec.path);
        let mut vf = String::new();
        if spec.every > 1 {
            vf = format!("select=not(mod(n\\,{})),", spec.every);
        }
        vf.push_str("showinfo=checksum=0");
        // 0:V:0: the first video stream that is not cover art. passthrough: every decoded frame once, none
        // duplicated or dropped to reach a constant rate.
        c.args(["-map", "0:V:0", "-vf", &vf, "-fps_mode", "passthrough"]);
        c.args(["-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]);
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| probe::spawn_error("ffmpeg", e))?;
        Ok(Decoder { child })
    }

    /// Sends every frame to `tx` in order; stops early (killing ffmpeg) when the receiver is gone. Returns why the
    /// file is damaged or truncated, when FFmpeg says so or its output breaks off. The decoder's first error ends
    /// decoding: frames after it may be garbage until the next key frame, so only frames FFmpeg delivered before
    /// the error (its decoder runs a few frames ahead, so the last intact ones may be lost too) get rows. Container
    /// errors (a truncated file) let decoding go on to what remains.
    pub fn run(mut self, spec: &Spec, tx: SyncSender<Frame>, pb: &ProgressBar) -> Option<String> {
        let name = spec.path.display().to_string();
        let (Some(mut stdout), Some(stderr)) = (self.child.stdout.take(), self.child.stderr.take())
        else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Some(format!("video {name}: ffmpeg's pipes are missing"));
        };
        let (log_tx, log) = channel();
        let codec = spec.codec.to_string();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                let l = parse(&String::from_utf8_lossy(&line), &codec);
                if l != Log::Other && log_tx.send(l).is_err() {
                    break;
                }
            }
        });
        let (frames, mut errors, end) = self.frames(spec, &mut stdout, &log, &tx, pb);
        drop(tx);
        let mut why: Vec<String> = Vec::new();
        match end {
            // The receiver is gone: the run stopped; nothing more to say.
            End::Gone => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            End::Broken(b) => {
                why.push(b);
                let _ = self.child.kill();
            }
            End::Eof => {}
        }
        errors.extend(log.iter().filter_map(|l| match l {
            Log::Error(e, _) => Some(e),
            _ => None,
        }));
        let _ = reader.join();
        match (self.child.wait(), why.is_empty()) {
            (Ok(s), true) if !s.success() => why.push(format!("ffmpeg exited with {s}")),
            (Err(e), _) => why.push(format!("cannot wait for ffmpeg: {e}")),
            _ => {}
        }
        if !errors.is_empty() {
            let n = errors.len();
            errors.truncate(3);
            let more = if n > 3 {
                format!(" (and {} more)", n - 3)
            } else {
                String::new()
            };
            why.push(format!("ffmpeg reported: {}{more}", errors.join("; ")));
        }
        (!why.is_empty()).then(|| {
            format!(
                "video {name}: damaged or truncated: {frames} frame{} decoded before the damage: {}",
                if frames == 1 { "" } else { "s" },
                why.join("; ")
            )
        })
    }

    /// The frame loop: the frames sent, the errors FFmpeg logged, and how it ended.
    fn frames(
        &mut self,
        spec: &Spec,
        stdout: &mut ChildStdout,
        log: &Receiver<Log>,
        tx: &SyncSender<Frame>,
        pb: &ProgressBar,
    ) -> (u64, Vec<String>, End) {
        let start = spec.start.unwrap_or(0.0);
        let step = spec.rate.map_or(0.0, |r| spec.every as f64 / r.fps());
        let mut tb = (1i64, 1i64);
        let mut size: Option<(u32, u32)> = None;
        let mut warned = false;
        let mut errors = Vec::new();
        let mut sent = 0u64;
        let mut last = None::<f64>;
        for l in log.iter() {
            let (pts, w, h) = match l {
                Log::TimeBase(n, d) => {
                    tb = (n, d);
                    continue;
                }
                Log::Error(e, true) => {
                    return (
                        sent,
                        errors,
                        End::Broken(format!("the decoder reported damage: {e}")),
                    );
                }
                Log::Error(e, _) => {
                    errors.push(e);
                    continue;
                }
                Log::Other => continue,
                Log::Frame { pts, w, h } => (pts, w, h),
            };
            // FFmpeg scales frames after a mid-stream size change to the first size (its -autoscale).
            let (fw, fh) = *size.get_or_insert((w, h));
            if (w, h) != (fw, fh) && !warned {
                warned = true;
                say!(pb, "sshface: warning: {}: the frame size changes from {fw}x{fh} to {w}x{h} at frame {}; ffmpeg scales such frames to {fw}x{fh}", spec.path.display(), sent * spec.every);
            }
            let mut buf = vec![0u8; fw as usize * fh as usize * 3];
            if let Err(e) = stdout.read_exact(&mut buf) {
                let why = format!(
                    "ffmpeg's output ended inside frame {} ({e})",
                    sent * spec.every
                );
                return (sent, errors, End::Broken(why));
            }
            let time = match pts {
                Some(p) if tb.1 != 0 => start + p as f64 * tb.0 as f64 / tb.1 as f64,
                _ => last.map_or(start, |t| t + step),
            };
            last = Some(time);
            let Some(img) = RgbImage::from_raw(fw, fh, buf) else {
                return (sent, errors, End::Broken("bad frame buffer".into()));
            };
            let frame = Frame {
                index: sent * spec.every,
                time: (time * 1e6).round() / 1e6,
                p: buckets::prepare(img, spec.max_side, None),
            };
            super::super::worker::decoded(pb);
            if tx.send(frame).is_err() {
                return (sent, errors, End::Gone);
            }
            sent += 1;
        }
        let mut extra = [0u8; 1];
        let end = match stdout.read(&mut extra) {
            Ok(0) | Err(_) => End::Eof,
            Ok(_) => End::Broken("ffmpeg sent frame data without a frame report".to_string()),
        };
        (sent, errors, end)
    }
}

/// Parses one line of `-loglevel level+info` output: `[context @ 0x…] [level] message`, contexts possibly nested
/// (`[vist#0:0/h264 @ 0x…] [dec:h264 @ 0x…]`); an error under a context naming `codec` is the decoder's.
fn parse(line: &str, codec: &str) -> Log {
    let mut rest = line.trim_end();
    let mut level = "";
    let mut ctx = Vec::new();
    while let Some(r) = rest.strip_prefix('[') {
        let Some(end) = r.find("] ") else { break };
        let tag = &r[..end];
        match tag.split_once(" @ ") {
            Some((name, _)) => ctx.push(name),
            None => level = tag,
        }
        rest = &r[end + 2..];
    }
    match level {
        "error" | "fatal" | "panic" => {
            let decoder = ctx.iter().any(|c| {
                let c = c.rsplit(['/', ':']).next().unwrap_or(c);
                c == codec
            });
            let ctx: Vec<&str> = ctx.into_iter().filter(|c| !c.starts_with("in#")).collect();
            let msg = if ctx.is_empty() {
                rest.to_string()
            } else {
                format!("{}: {rest}", ctx.join(" "))
            };
            Log::Error(msg, decoder)
        }
        "info" if ctx.iter().any(|c| c.contains("showinfo")) => showinfo(rest),
        _ => Log::Other,
    }
}

/// A showinfo line: `n: 0 pts: 512 pts_time:0.05 … s:160x120 …`, or `config in time_base: 1/10240, …`.
fn showinfo(msg: &str) -> Log {
    if let Some(r) = msg.strip_prefix("config in time_base:") {
        let tb = r.split(',').next().unwrap_or("").trim();
        if let Some((n, d)) = tb.split_once('/') {
            if let (Ok(n), Ok(d)) = (n.parse(), d.parse()) {
                return Log::TimeBase(n, d);
            }
        }
        return Log::Other;
    }
    if !msg.starts_with("n:") {
        return Log::Other;
    }
    let size = field(msg, "s:").and_then(|s| {
        let (w, h) = s.split_once('x')?;
        Some((w.parse().ok()?, h.parse().ok()?))
    });
    match size {
        Some((w, h)) => Log::Frame {
            pts: field(msg, "pts:").and_then(|p| p.parse().ok()),
            w,
            h,
        },
        None => Log::Other,
    }
}

/// The value after `key` (at the start or after a space), spaces after the key skipped.
fn field<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    let at = msg
        .match_indices(key)
        .find(|&(i, _)| i == 0 || msg.as_bytes()[i - 1] == b' ')?
        .0;
    msg[at + key.len()..].split_whitespace().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines() {
        let parse = |l: &str| parse(l, "h264");
        let f = "[Parsed_showinfo_1 @ 0x7fbc70002080] [info] n:   2 pts:   4608 pts_time:0.45    \
                 duration:   1024 duration_time:0.1     fmt:yuv420p cl:left sar:1/1 s:160x120 i:P iskey:0 type:P ";
        assert_eq!(
            parse(f),
            Log::Frame {
                pts: Some(4608),
                w: 160,
                h: 120
            }
        );
        let nopts = "[Parsed_showinfo_0 @ 0x1] [info] n:   0 pts:NOPTS pts_time:NOPTS s:8x6 i:P";
        assert_eq!(
            parse(nopts),
            Log::Frame {
                pts: None,
                w: 8,
                h: 6
            }
        );
        let tb = "[Parsed_showinfo_1 @ 0x7f] [info] config in time_base: 1/10240, frame_rate: 10/1";
        assert_eq!(parse(tb), Log::TimeBase(1, 10240));
        let e = "[vist#0:0/h264 @ 0x55] [dec:h264 @ 0x55e7] [error] Decoding error: Invalid data";
        assert_eq!(
            parse(e),
            Log::Error(
                "vist#0:0/h264 dec:h264: Decoding error: Invalid data".into(),
                true
            )
        );
        let e = "[matroska,webm @ 0x5622412fb2c0] [error] File ended prematurely";
        assert_eq!(
            parse(e),
            Log::Error("matroska,webm: File ended prematurely".into(), false)
        );
        assert_eq!(
            parse("[fatal] Error opening input files"),
            Log::Error("Error opening input files".into(), false)
        );
        assert_eq!(
            parse("[info] Input #0, matroska,webm, from 'a.mkv':"),
            Log::Other
        );
        assert_eq!(
            parse("[matroska @ 0x1] [warning] File extends beyond end of segment."),
            Log::Other
        );
        assert_eq!(
            parse("[Parsed_showinfo_1 @ 0x7f] [info] color_range:unknown"),
            Log::Other
        );
    }
}
