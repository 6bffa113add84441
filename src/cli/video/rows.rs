//! The rows of `detect VIDEO`: one per processed frame, `{"image": <video>, "frame": k, "time": s, "width",
//! "height", "faces": […]}` as JSON Lines (the default), one JSON array, or CSV (one row per face); a video that
//! cannot be read, or breaks off, adds the error row `{"image": <video>, "error": …}` after its frames' rows.

use std::io::{self, Write};

use serde::Serialize;
use sshface::Face;

use super::super::output::{csv_field, face_cells, Format, CSV_HEADER};

/// CSV columns: the image CSV's, with the frame index and time after the image.
pub fn csv_header() -> String {
    CSV_HEADER.replacen("image,", "image,frame,time,", 1)
}

#[derive(Serialize)]
struct FrameRow<'a> {
    image: &'a str,
    frame: u64,
    time: f64,
    width: u32,
    height: u32,
    faces: &'a [Face],
}

#[derive(Serialize)]
struct ErrorRow<'a> {
    image: &'a str,
    error: &'a str,
}

pub struct Rows {
    format: Format,
    out: Box<dyn Write>,
    first: bool,
}

impl Rows {
    /// `format` is json, jsonl or csv (the caller refuses wider).
    pub fn new(format: Format, out: Box<dyn Write>) -> io::Result<Rows> {
        let mut r = Rows {
            format,
            out,
            first: true,
        };
        match format {
            Format::Json => r.out.write_all(b"[\n")?,
            Format::Csv => writeln!(r.out, "{}", csv_header())?,
            _ => {}
        }
        Ok(r)
    }

    /// One frame's row(s); written at once, so a run cut short keeps every finished frame.
    pub fn frame(
        &mut self,
        video: &str,
        frame: u64,
        time: f64,
        size: (u32, u32),
        faces: &[Face],
    ) -> io::Result<()> {
        let (width, height) = size;
        let text = match self.format {
            Format::Csv => {
                let v = csv_field(video);
                if faces.is_empty() {
                    format!("{v},{frame},{time},{width},{height},,,,,,,,,,,,,,,,,\n")
                } else {
                    faces
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            format!(
                                "{v},{frame},{time},{width},{height},{i},{},\n",
                                face_cells(f)
                            )
                        })
                        .collect()
                }
            }
            _ => serde_json::to_string(&FrameRow {
                image: video,
                frame,
                time,
                width,
                height,
                faces,
            })?,
        };
        self.write(text)
    }

    pub fn error(&mut self, video: &str, error: &str) -> io::Result<()> {
        let text = match self.format {
            Format::Csv => format!(
                "{},,,,,,,,,,,,,,,,,,,,,{}\n",
                csv_field(video),
                csv_field(error)
            ),
            _ => serde_json::to_string(&ErrorRow {
                image: video,
                error,
            })?,
        };
        self.write(text)
    }

    fn write(&mut self, text: String) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let sep = if self.first { "" } else { ",\n" };
                write!(self.out, "{sep}  {text}")?;
            }
            Format::Jsonl => writeln!(self.out, "{text}")?,
            _ => self.out.write_all(text.as_bytes())?,
        }
        self.first = false;
        self.out.flush()
    }

    pub fn finish(mut self) -> io::Result<()> {
        if self.format == Format::Json {
            self.out
                .write_all(if self.first { b"]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Buf(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn face() -> Face {
        Face {
            bbox: [1.0, 2.0, 3.5, 4.0],
            score: 0.75,
            landmarks: None,
        }
    }

    #[test]
    fn jsonl_and_csv_rows() {
        let b = Buf::default();
        let mut r = Rows::new(Format::Jsonl, Box::new(b.clone())).unwrap();
        r.frame("a,b.mp4", 5, 0.2, (64, 48), &[face()]).unwrap();
        r.error("a,b.mp4", "broken").unwrap();
        r.finish().unwrap();
        let text = String::from_utf8(b.0.borrow().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"image":"a,b.mp4","frame":5,"time":0.2,"width":64,"height":48,"faces":[{"box":[1.0,2.0,3.5,4.0],"score":0.75,"landmarks":null}]}"#
        );
        assert_eq!(lines[1], r#"{"image":"a,b.mp4","error":"broken"}"#);

        let b = Buf::default();
        let mut r = Rows::new(Format::Csv, Box::new(b.clone())).unwrap();
        r.frame("v.mp4", 0, 0.0, (64, 48), &[]).unwrap();
        r.frame("v.mp4", 1, 0.04, (64, 48), &[face(), face()])
            .unwrap();
        r.error("v.mp4", "x").unwrap();
        let text = String::from_utf8(b.0.borrow().clone()).unwrap();
        let cols = csv_header().split(',').count();
        for l in text.lines() {
            assert_eq!(l.split(',').count(), cols, "{l}");
        }
        assert!(
            text.contains("\nv.mp4,1,0.04,64,48,1,1,2,3.5,4,0.75,"),
            "{text}"
        );
    }

    #[test]
    fn json_array_closes() {
        let b = Buf::default();
        let mut r = Rows::new(Format::Json, Box::new(b.clone())).unwrap();
        r.frame("v.mkv", 0, 0.0, (8, 8), &[]).unwrap();
        r.frame("v.mkv", 1, 0.1, (8, 8), &[]).unwrap();
        r.finish().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&b.0.borrow()).unwrap();
        assert_eq!(v[1]["frame"], 1);
        assert_eq!(v[1]["time"], 0.1);
    }
}
