//! Model converters: TF frozen GraphDef (BN folded) and Caffe caffemodel → safetensors.
//!
//! Both converters are pure functions of the input bytes, returning [`Converted`]; the file
//! side (hashing, atomic write) lives here so the CLI only calls [`convert_file`].

pub mod caffe;
mod caffe_net;
mod graph_def;
pub mod protobuf;
pub mod tf_graph;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// One named tensor: (name, shape, row-major f32 values).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// A converter's result: tensors in table order, safetensors `__metadata__`, and notes on what
/// was checked and dropped (for the CLI to print).
#[derive(Debug, Clone, Default)]
pub struct Converted {
    pub tensors: Vec<NamedTensor>,
    pub metadata: HashMap<String, String>,
    pub notes: Vec<String>,
}

/// Source model format of [`convert_file`]. Parses from `tf-graph` and `caffe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TensorFlow frozen GraphDef (`frozen_graph.pb`) of RetinaFace-MobileNetV2.
    TfGraph,
    /// Caffe `.caffemodel` (binary NetParameter) of SSH-VGG16, or of the ImageNet VGG-16 (its convolutions only).
    Caffe,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tf-graph" => Ok(Format::TfGraph),
            "caffe" => Ok(Format::Caffe),
            _ => Err(format!(
                "unknown model format '{s}' (expected tf-graph or caffe)"
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::TfGraph => "tf-graph",
            Format::Caffe => "caffe",
        })
    }
}

/// What [`convert_file`] did.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub format: Format,
    pub input: PathBuf,
    pub output: PathBuf,
    /// Lower-case hex sha256 of the input file.
    pub input_sha256: String,
    pub tensors: usize,
    /// Total number of f32 values written.
    pub values: usize,
    pub notes: Vec<String>,
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads `input`, converts it and writes `output` atomically.
pub fn convert_file(from: Format, input: &Path, output: &Path) -> Result<ConvertReport> {
    let bytes = std::fs::read(input).map_err(|cause| Error::Io {
        path: input.display().to_string(),
        cause,
    })?;
    let source_name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| input.display().to_string());
    let converted = match from {
        Format::TfGraph => tf_graph::convert_tf_graph(&bytes, &source_name)?,
        Format::Caffe => caffe::convert_caffe(&bytes, &source_name)?,
    };
    write_safetensors(output, &converted.tensors, &converted.metadata)?;
    Ok(ConvertReport {
        format: from,
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        input_sha256: sha256_hex(&bytes),
        tensors: converted.tensors.len(),
        values: converted.tensors.iter().map(|t| t.2.len()).sum(),
        notes: converted.notes,
    })
}

/// Writes F32 tensors and `metadata` as safetensors. The file appears atomically: it is written
/// to a temporary file beside `path` and renamed, so a failed run never leaves half a file.
pub fn write_safetensors(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let file = path.display().to_string();
    let err = |msg: String| Error::Convert {
        file: file.clone(),
        msg,
    };
    let mut seen = HashSet::new();
    let mut bytes = Vec::with_capacity(tensors.len());
    for (name, shape, data) in tensors {
        if !seen.insert(name.as_str()) {
            return Err(err(format!("tensor {name} appears twice")));
        }
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(err(format!(
                "tensor {name}: shape {shape:?} has {n} elements but {} values were given",
                data.len()
            )));
        }
        // Explicit little-endian so the file is right on any host.
        bytes.push(
            data.iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
    }
    let out = serialize_sorted(tensors, &bytes, metadata);

    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |cause| Error::Io { path: p, cause }
    };
    // Errors name the file asked for; the temporary name beside it is an implementation detail.
    let write = || -> Result<()> {
        let mut f = std::fs::File::create(&tmp).map_err(io(path))?;
        f.write_all(&out).map_err(io(path))?;
        f.sync_all().map_err(io(path))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// The safetensors bytes with a deterministic header: `__metadata__` first with its keys sorted, then the tensors
/// sorted by name, data in the same order. The safetensors crate takes the metadata as a `HashMap` and writes it in
/// that map's random order, so two conversions of one model would hash differently.
fn serialize_sorted(
    tensors: &[NamedTensor],
    bytes: &[Vec<u8>],
    metadata: &HashMap<String, String>,
) -> Vec<u8> {
    let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| tensors[a].0.cmp(&tensors[b].0));
    let mut fields = Vec::new();
    if !metadata.is_empty() {
        let sorted: std::collections::BTreeMap<&String, &String> = metadata.iter().collect();
        let meta = sorted
            .iter()
            .map(|(k, v)| format!("{}:{}", json(k), json(v)))
            .collect::<Vec<_>>()
            .join(",");
        fields.push(format!("\"__metadata__\":{{{meta}}}"));
    }
    let mut offset = 0;
    for &i in &order {
        let (name, shape, _) = &tensors[i];
        let end = offset + bytes[i].len();
        fields.push(format!(
            "{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            json(name),
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ));
        offset = end;
    }
    let mut header = format!("{{{}}}", fields.join(","));
    // As the safetensors crate: the header padded with spaces to a multiple of 8 so the data is aligned.
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &i in &order {
        out.extend_from_slice(&bytes[i]);
    }
    out
}

impl Converted {
    /// Refuses a conversion whose tensors hold a NaN or ±infinity (stored in the source, or made by folding, e.g. a
    /// BatchNorm variance of −ε), naming the first such tensor: the loader would refuse the file anyway.
    pub(crate) fn finite(self, file: &str) -> Result<Self> {
        for (name, shape, values) in &self.tensors {
            if let Some((i, v)) = crate::model::weights::first_non_finite(values) {
                return Err(Error::Convert {
                    file: file.to_string(),
                    msg: format!(
                        "tensor {name} would hold the non-finite value {v} at element {i} (shape {shape:?}); \
                         weights must be finite"
                    ),
                });
            }
        }
        Ok(self)
    }
}

/// Maps a wire-format error to a conversion error naming the file.
pub(crate) fn wire(file: &str) -> impl Fn(protobuf::WireError) -> Error + '_ {
    move |e| Error::Convert {
        file: file.to_string(),
        msg: e.to_string(),
    }
}
