//! Output formats of `detect` and the unit files of `--out`, written under a temporary name and renamed when
//! complete, so a final name always holds a whole unit.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::Serialize;
use sshface::Face;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON array, one object per image.
    Json,
    /// One JSON object per image per line.
    Jsonl,
    /// One row per face (one with empty face columns for an image without faces).
    Csv,
    /// WIDER FACE result files as `eval` writes them (`<event>/<name>.txt`).
    Wider,
}

impl Format {
    /// The unit's output under `--out`: a file, or for wider a folder.
    pub fn unit_path(self, dir: &Path, unit: &str) -> PathBuf {
        match self {
            Format::Json => dir.join(format!("{unit}.json")),
            Format::Jsonl => dir.join(format!("{unit}.jsonl")),
            Format::Csv => dir.join(format!("{unit}.csv")),
            Format::Wider => dir.join(unit),
        }
    }
}

/// An image's outcome: its size in original pixels and faces, or why it failed.
pub struct Record {
    pub image: String,
    pub result: Result<(u32, u32, Vec<Face>), String>,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    image: &'a str,
    error: &'a str,
}

/// A success row is the library's `ImageFaces` (the `serde` feature), so the library and the CLI cannot drift apart;
/// serde_json writes each f32 in its shortest form (177.34369, not 177.34367370605469).
fn json(r: &Record) -> serde_json::Result<String> {
    match &r.result {
        Ok((width, height, faces)) => serde_json::to_string(&sshface::ImageFaces {
            image: r.image.clone(),
            width: *width,
            height: *height,
            faces: faces.clone(),
        }),
        Err(e) => serde_json::to_string(&ErrorOut {
            image: &r.image,
            error: e,
        }),
    }
}

pub const CSV_HEADER: &str =
    "image,width,height,face,x1,y1,x2,y2,score,left_eye_x,left_eye_y,right_eye_x,\
right_eye_y,nose_x,nose_y,mouth_left_x,mouth_left_y,mouth_right_x,mouth_right_y,error";

/// RFC 4180 quoting where needed (paths and messages may hold commas or quotes).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_rows(r: &Record) -> String {
    let img = csv_field(&r.image);
    match &r.result {
        Err(e) => format!("{img},,,,,,,,,,,,,,,,,,,{}\n", csv_field(e)),
        Ok((w, h, faces)) if faces.is_empty() => format!("{img},{w},{h},,,,,,,,,,,,,,,,,\n"),
        Ok((w, h, faces)) => faces
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{img},{w},{h},{i},{},\n", face_cells(f)))
            .collect(),
    }
}

/// A face's CSV cells from `x1` to `mouth_right_y` (empty landmark cells for a model without landmarks).
pub fn face_cells(f: &Face) -> String {
    let [x1, y1, x2, y2] = f.bbox;
    let lm = match f.landmarks {
        Some(l) => l
            .iter()
            .map(|p| format!("{},{}", p[0], p[1]))
            .collect::<Vec<_>>()
            .join(","),
        None => ",,,,,,,,,".into(),
    };
    format!("{x1},{y1},{x2},{y2},{},{lm}", f.score)
}

/// WIDER FACE's event folder and file stem of an image: its parent folder's name and its own stem.
fn wider_names(image: &str) -> (String, String) {
    let p = Path::new(image);
    let name = |o: Option<&std::ffi::OsStr>| o.map(|s| s.to_string_lossy().into_owned());
    let event = name(p.parent().and_then(Path::file_name)).unwrap_or_else(|| "_".into());
    (event, name(p.file_stem()).unwrap_or_else(|| "_".into()))
}

/// Writes records in one format to a stream, or for wider into a folder (`None`: the files' text to the stream).
pub struct Writer {
    format: Format,
    out: Box<dyn Write>,
    wider_dir: Option<PathBuf>,
    first: bool,
}

impl Writer {
    pub fn new(
        format: Format,
        out: Box<dyn Write>,
        wider_dir: Option<PathBuf>,
    ) -> io::Result<Self> {
        let mut w = Writer {
            format,
            out,
            wider_dir,
            first: true,
        };
        match format {
            Format::Json => w.out.write_all(b"[\n")?,
            Format::Csv => writeln!(w.out, "{CSV_HEADER}")?,
            _ => {}
        }
        Ok(w)
    }

    pub fn record(&mut self, r: &Record) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let sep = if self.first { "" } else { ",\n" };
                write!(self.out, "{sep}  {}", json(r)?)?;
            }
            Format::Jsonl => writeln!(self.out, "{}", json(r)?)?,
            Format::Csv => self.out.write_all(csv_rows(r).as_bytes())?,
            // A failed image has no result file (as in `eval`); its error row is the line on stderr.
            Format::Wider => {
                if let Ok((_, _, faces)) = &r.result {
                    let (event, stem) = wider_names(&r.image);
                    let text = super::eval::wider_lines(&stem, faces);
                    match &self.wider_dir {
                        Some(dir) => {
                            let d = dir.join(&event);
                            std::fs::create_dir_all(&d).map_err(|e| named(&d, e))?;
                            let f = d.join(format!("{stem}.txt"));
                            std::fs::write(&f, text).map_err(|e| named(&f, e))?;
                        }
                        None => self.out.write_all(text.as_bytes())?,
                    }
                }
            }
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

fn named(p: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// A unit's output under construction: a hidden `.<name>.partial-<pid>` beside the final name.
pub struct UnitFile {
    tmp: PathBuf,
    dest: PathBuf,
    writer: Writer,
}

impl UnitFile {
    /// Starts the unit's output, first removing partial outputs of this unit left by killed runs.
    pub fn create(dir: &Path, unit: &str, format: Format) -> io::Result<UnitFile> {
        let dest = format.unit_path(dir, unit);
        let base = dest
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let stale = format!(".{base}.partial-");
        for e in std::fs::read_dir(dir).map_err(|e| named(dir, e))?.flatten() {
            if e.file_name().to_string_lossy().starts_with(&stale) {
                remove(&e.path());
            }
        }
        let tmp = dir.join(format!("{stale}{}", std::process::id()));
        let writer = if format == Format::Wider {
            std::fs::create_dir(&tmp).map_err(|e| named(&tmp, e))?;
            Writer::new(format, Box::new(io::sink()), Some(tmp.clone()))?
        } else {
            let f = File::create(&tmp).map_err(|e| named(&tmp, e))?;
            Writer::new(format, Box::new(BufWriter::new(SyncOnDrop(f))), None)?
        };
        Ok(UnitFile { tmp, dest, writer })
    }

    pub fn writer(&mut self) -> &mut Writer {
        &mut self.writer
    }

    /// Completes the unit: data on disk, then the atomic rename to the final name.
    pub fn commit(self) -> io::Result<PathBuf> {
        self.writer.finish().map_err(|e| named(&self.tmp, e))?;
        if self.dest.is_dir() {
            // --overwrite of a wider folder: rename cannot replace a non-empty folder.
            std::fs::remove_dir_all(&self.dest).map_err(|e| named(&self.dest, e))?;
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| named(&self.dest, e))?;
        Ok(self.dest)
    }

    /// Drops an unfinished unit (interrupted run, device failure): nothing appears under the final name.
    pub fn abandon(self) {
        drop(self.writer);
        remove(&self.tmp);
    }
}

fn remove(p: &Path) {
    let _ = if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
}

/// A file synced to disk when dropped (after the last flush, before the rename), so a crash after the rename never
/// leaves a final name with data still in the page cache only.
struct SyncOnDrop(File);

impl Write for SyncOnDrop {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyncOnDrop {
    fn drop(&mut self) {
        let _ = self.0.sync_all();
    }
}

/// Puts records back into input order (buckets finish out of order) and writes each as soon as all before it are.
#[derive(Default)]
pub struct Ordered {
    next: usize,
    waiting: BTreeMap<usize, Record>,
}

impl Ordered {
    pub fn push(&mut self, idx: usize, r: Record, w: &mut Writer) -> io::Result<()> {
        self.waiting.insert(idx, r);
        while let Some(r) = self.waiting.remove(&self.next) {
            w.record(&r)?;
            self.next += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(lm: bool) -> Face {
        Face {
            bbox: [1.5, 2.0, 30.25, 40.0],
            score: 0.9,
            landmarks: lm.then_some([[1.0, 2.0]; 5]),
        }
    }

    #[test]
    fn csv_rows_cover_faces_no_faces_and_errors() {
        let ok = Record {
            image: "a,b.jpg".into(),
            result: Ok((10, 20, vec![face(true), face(false)])),
        };
        let rows = csv_rows(&ok);
        let lines: Vec<&str> = rows.lines().collect();
        assert_eq!(
            lines[0],
            "\"a,b.jpg\",10,20,0,1.5,2,30.25,40,0.9,1,2,1,2,1,2,1,2,1,2,"
        );
        assert_eq!(
            lines[1],
            "\"a,b.jpg\",10,20,1,1.5,2,30.25,40,0.9,,,,,,,,,,,"
        );
        let cols = CSV_HEADER.split(',').count();
        let none = Record {
            image: "n.png".into(),
            result: Ok((1, 1, vec![])),
        };
        let err = Record {
            image: "bad.png".into(),
            result: Err("cannot \"decode\"".into()),
        };
        for r in [csv_rows(&none), csv_rows(&err)]
            .iter()
            .chain(&[lines[0].to_string() + "\n"])
        {
            let unquoted = r.replace("\"a,b.jpg\"", "x");
            assert_eq!(unquoted.trim_end().split(',').count(), cols, "{r}");
        }
        assert!(csv_rows(&err).ends_with(",\"cannot \"\"decode\"\"\"\n"));
    }

    #[test]
    fn ordered_writes_in_input_order_and_json_closes() {
        let buf = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = Writer::new(Format::Json, Box::new(Shared(buf.clone())), None).unwrap();
        let mut o = Ordered::default();
        for i in [2, 0, 1] {
            let r = Record {
                image: format!("{i}.png"),
                result: Err("x".into()),
            };
            o.push(i, r, &mut w).unwrap();
        }
        w.finish().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf.borrow()).unwrap();
        let names: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["image"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["0.png", "1.png", "2.png"]);
        assert_eq!(
            wider_names("d/0--Parade/0_Parade_1.jpg"),
            ("0--Parade".into(), "0_Parade_1".into())
        );
    }
}
