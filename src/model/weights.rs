//! Safetensors weight files with candle-style prefixes and shape-checked lookup.
//!
//! `wf.pp("m1").pp("ssh_3x3").get("weight", &[128, 128, 3, 3])` either returns the values or an
//! error naming the file, the full tensor name and the expected shape. Every requested name is
//! recorded so that [`WeightFile::check_all_used`] can reject files with unknown tensors (a
//! renamed layer would otherwise be silently ignored).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use safetensors::tensor::{Dtype, SafeTensors};

use crate::{Error, Result};

/// All tensors of one file, widened to f32.
#[derive(Debug)]
pub struct WeightFile {
    label: String,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    metadata: HashMap<String, String>,
    used: Mutex<HashSet<String>>,
}

/// A view of a [`WeightFile`] under a dotted name prefix.
#[derive(Debug, Clone)]
pub struct WeightPrefix<'a> {
    file: &'a WeightFile,
    prefix: String,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// IEEE half → f32, exact for every value (subnormals, infinities and NaN included).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        // Subnormal: value = man · 2^-24, exactly representable in f32.
        (0, m) => {
            let v = m as f32 * 2f32.powi(-24);
            return if sign != 0 { -v } else { v };
        }
        (31, 0) => sign | 0x7f80_0000,
        (31, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// The index and value of the first NaN or ±infinity in `values`.
pub fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    values
        .iter()
        .position(|v| !v.is_finite())
        .map(|i| (i, values[i]))
}

impl WeightFile {
    /// Memory-maps and reads a safetensors file. F32 and F16 (widened) only.
    pub fn open(path: &Path) -> Result<WeightFile> {
        let label = path.display().to_string();
        let io = |cause| Error::Io {
            path: label.clone(),
            cause,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < 8 {
            return Err(Error::Weights {
                file: label,
                msg: format!("file has {len} bytes, too short for a safetensors header"),
            });
        }
        // SAFETY: the map is read-only and only used while this function runs; the data is
        // copied out. A concurrent truncation by another process could still fault, as for
        // any mmap reader.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_bytes(&label, &map)
    }

    /// Reads safetensors bytes (e.g. an `include_bytes!`'d file); `label` names it in errors.
    pub fn from_bytes(label: &str, bytes: &[u8]) -> Result<WeightFile> {
        let err = |msg: String| Error::Weights {
            file: label.to_string(),
            msg,
        };
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.iter() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
                other => {
                    return Err(err(format!(
                        "tensor {name} has dtype {other}; only F32 and F16 are supported"
                    )))
                }
            };
            // A NaN or infinity would run through every layer and come out as boxes with NaN coordinates.
            if let Some((i, v)) = first_non_finite(&values) {
                return Err(err(format!(
                    "tensor {name} holds the non-finite value {v} at element {i} (shape {:?}); weights must be finite",
                    view.shape()
                )));
            }
            tensors.insert(name.to_string(), (view.shape().to_vec(), values));
        }
        Ok(WeightFile {
            label: label.to_string(),
            tensors,
            metadata: meta.metadata().clone().unwrap_or_default(),
            used: Mutex::new(HashSet::new()),
        })
    }

    /// The file name (or label) used in error messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tensors.keys().cloned().collect();
        v.sort();
        v
    }

    /// The file's `__metadata__` (empty when absent).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// The shape of `name`, without marking it used.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(s, _)| s.as_slice())
    }

    /// The values of `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
        let err = |msg: String| Error::Weights {
            file: self.label.clone(),
            msg,
        };
        match self.tensors.get(name) {
            None => Err(err(format!(
                "missing tensor {name} (expected shape {shape:?})"
            ))),
            Some((s, _)) if s != shape => Err(err(format!(
                "{name}: expected shape {shape:?}, found {s:?}"
            ))),
            Some((_, v)) => Ok(v),
        }
    }

    /// A view whose `get` prepends `prefix.` to names.
    pub fn pp(&self, prefix: &str) -> WeightPrefix<'_> {
        WeightPrefix {
            file: self,
            prefix: prefix.to_string(),
        }
    }

    /// Fails naming every tensor that no `get` asked for (unknown names), so a file with extra
    /// tensors is rejected.
    pub fn check_all_used(&self) -> Result<()> {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let unknown: Vec<String> = self
            .names()
            .into_iter()
            .filter(|n| !used.contains(n))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Error::Weights {
            file: self.label.clone(),
            msg: format!(
                "{} unknown tensor(s) not used by the model: {}",
                unknown.len(),
                unknown.join(", ")
            ),
        })
    }
}

impl<'a> WeightPrefix<'a> {
    /// A deeper prefix: `wf.pp("m1").pp("ssh_3x3")` is `m1.ssh_3x3`.
    pub fn pp(&self, prefix: &str) -> WeightPrefix<'a> {
        WeightPrefix {
            file: self.file,
            prefix: join(&self.prefix, prefix),
        }
    }

    /// The full dotted name of `name` under this prefix.
    pub fn name(&self, name: &str) -> String {
        join(&self.prefix, name)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// [`WeightFile::get`] of `prefix.name`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&'a [f32]> {
        self.file.get(&self.name(name), shape)
    }
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    /// Infinities and NaN are refused at load, so their widening is checked here, where it is still visible.
    #[test]
    fn f16_infinities_and_nan_widen_to_f32_ones() {
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan() && f16_to_f32(0xfe01).is_nan());
    }
}
