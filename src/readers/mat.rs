//! A reader for MATLAB level-5 MAT files (the format of WIDER FACE's ground truth, `save -v7`): numeric arrays,
//! char arrays and cell arrays, zlib-compressed (`miCOMPRESSED`) or not. Structs, sparse and complex arrays are
//! reported as unsupported, never guessed at. Layout: MathWorks, "MAT-File Format", R2023a, chapter 1.

use std::collections::HashMap;
use std::io::Read;

/// A MATLAB value; dimensions as MATLAB gives them, data column-major.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Num {
        dims: Vec<usize>,
        data: Vec<f64>,
    },
    Char(String),
    Cell {
        dims: Vec<usize>,
        items: Vec<Value>,
    },
    /// A class this reader does not decode (struct, object, sparse, complex): its class number.
    Unsupported(u8),
}

impl Value {
    /// The elements of a cell array, or an error naming `what`.
    pub fn cells(&self, what: &str) -> Result<&[Value], String> {
        match self {
            Value::Cell { items, .. } => Ok(items),
            other => Err(format!(
                "{what}: expected a cell array, found {}",
                other.kind()
            )),
        }
    }
    /// The text of a char array.
    pub fn text(&self, what: &str) -> Result<&str, String> {
        match self {
            Value::Char(s) => Ok(s),
            other => Err(format!(
                "{what}: expected a char array, found {}",
                other.kind()
            )),
        }
    }
    /// A numeric matrix as rows of `cols` values (an empty array gives no rows).
    pub fn rows(&self, what: &str, cols: usize) -> Result<Vec<Vec<f64>>, String> {
        match self {
            Value::Num { dims, data } if data.is_empty() => {
                let _ = dims;
                Ok(Vec::new())
            }
            Value::Num { dims, data } if dims.len() == 2 && dims[1] == cols => {
                let n = dims[0];
                Ok((0..n)
                    .map(|r| (0..cols).map(|c| data[c * n + r]).collect())
                    .collect())
            }
            Value::Num { dims, .. } => Err(format!(
                "{what}: expected an N×{cols} matrix, found {dims:?}"
            )),
            other => Err(format!(
                "{what}: expected a numeric matrix, found {}",
                other.kind()
            )),
        }
    }
    /// All values of a numeric array.
    pub fn numbers(&self, what: &str) -> Result<&[f64], String> {
        match self {
            Value::Num { data, .. } => Ok(data),
            other => Err(format!(
                "{what}: expected a numeric array, found {}",
                other.kind()
            )),
        }
    }
    fn kind(&self) -> String {
        match self {
            Value::Num { dims, .. } => format!("a numeric array {dims:?}"),
            Value::Char(_) => "a char array".into(),
            Value::Cell { dims, .. } => format!("a cell array {dims:?}"),
            Value::Unsupported(c) => format!("an unsupported array of class {c}"),
        }
    }
}

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
/// Deepest nesting of cell arrays (WIDER FACE's ground truth nests 2 deep).
const MAX_DEPTH: usize = 64;
/// Largest inflated size of one compressed variable.
const MAX_INFLATED: u64 = 1 << 30;

/// Reads every top-level variable of a MAT file held in `bytes`.
pub fn parse(bytes: &[u8]) -> Result<HashMap<String, Value>, String> {
    if bytes.len() < 128 {
        return Err("shorter than the 128-byte MAT-file header".into());
    }
    if &bytes[126..128] != b"IM" {
        return Err(format!(
            "not a little-endian level-5 MAT file (endian indicator {:?}; v7.3 HDF5 files are not supported)",
            String::from_utf8_lossy(&bytes[126..128])
        ));
    }
    let mut vars = HashMap::new();
    let mut r = Reader { b: bytes, pos: 128 };
    while r.pos + 8 <= bytes.len() {
        let (ty, data) = r.element()?;
        match ty {
            MI_MATRIX => {
                let (name, v) = matrix(data, 0)?;
                vars.insert(name, v);
            }
            MI_COMPRESSED => {
                let mut raw = Vec::new();
                // Bounded: WIDER FACE's largest variable inflates to a few MB; a zip bomb must not exhaust memory.
                flate2::read::ZlibDecoder::new(data)
                    .take(MAX_INFLATED)
                    .read_to_end(&mut raw)
                    .map_err(|e| format!("compressed variable at byte {}: {e}", r.pos))?;
                let mut inner = Reader { b: &raw, pos: 0 };
                let (ty, d) = inner.element()?;
                if ty == MI_MATRIX {
                    let (name, v) = matrix(d, 0)?;
                    vars.insert(name, v);
                }
            }
            _ => {}
        }
    }
    Ok(vars)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u32_at(&self, at: usize) -> Result<u32, String> {
        self.b
            .get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(|| format!("truncated at byte {at}"))
    }

    /// The next data element: (type, payload); handles the small (4-byte) format and the 8-byte padding.
    fn element(&mut self) -> Result<(u32, &'a [u8]), String> {
        let first = self.u32_at(self.pos)?;
        if first >> 16 != 0 {
            let (ty, n) = (first & 0xffff, (first >> 16) as usize);
            if n > 4 {
                return Err(format!(
                    "small data element of {n} bytes at byte {}",
                    self.pos
                ));
            }
            let d = self
                .b
                .get(self.pos + 4..self.pos + 4 + n)
                .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
            self.pos += 8;
            return Ok((ty, d));
        }
        let n = self.u32_at(self.pos + 4)? as usize;
        let start = self.pos + 8;
        let d = self.b.get(start..start + n).ok_or_else(|| {
            format!(
                "element of {n} bytes at byte {} runs past the end",
                self.pos
            )
        })?;
        // Compressed elements are not padded; all others end on an 8-byte boundary.
        self.pos = if first == MI_COMPRESSED {
            start + n
        } else {
            start + n.next_multiple_of(8)
        };
        Ok((first, d))
    }
}

fn numbers(ty: u32, d: &[u8]) -> Result<Vec<f64>, String> {
    fn conv<const N: usize>(d: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        d.chunks_exact(N)
            .map(|c| f(c.try_into().unwrap()))
            .collect()
    }
    Ok(match ty {
        MI_INT8 => conv(d, |b: [u8; 1]| b[0] as i8 as f64),
        MI_UINT8 | MI_UTF8 => conv(d, |b: [u8; 1]| b[0] as f64),
        MI_INT16 => conv(d, |b| i16::from_le_bytes(b) as f64),
        MI_UINT16 => conv(d, |b| u16::from_le_bytes(b) as f64),
        MI_INT32 => conv(d, |b| i32::from_le_bytes(b) as f64),
        MI_UINT32 => conv(d, |b| u32::from_le_bytes(b) as f64),
        MI_SINGLE => conv(d, |b| f32::from_le_bytes(b) as f64),
        MI_DOUBLE => conv(d, f64::from_le_bytes),
        MI_INT64 => conv(d, |b| i64::from_le_bytes(b) as f64),
        MI_UINT64 => conv(d, |b| u64::from_le_bytes(b) as f64),
        other => return Err(format!("numeric data of unknown type {other}")),
    })
}

/// Decodes the payload of a miMATRIX element: (name, value).
fn matrix(d: &[u8], depth: usize) -> Result<(String, Value), String> {
    // Cells nest by recursion: a few bytes per level would otherwise overflow the stack.
    if depth > MAX_DEPTH {
        return Err(format!("cell arrays nested more than {MAX_DEPTH} deep"));
    }
    if d.is_empty() {
        // An empty cell element may be written as a matrix with no subelements.
        return Ok((
            String::new(),
            Value::Num {
                dims: vec![0, 0],
                data: Vec::new(),
            },
        ));
    }
    let mut r = Reader { b: d, pos: 0 };
    let (_, flags) = r.element()?;
    let flags = numbers(MI_UINT32, flags)?;
    let flag = flags.first().copied().unwrap_or(0.0) as u32;
    let class = flag & 0xff;
    let complex = flag & 0x800 != 0;
    let (ty, dims) = r.element()?;
    let dims: Vec<usize> = numbers(ty, dims)?.into_iter().map(|v| v as usize).collect();
    let (_, name) = r.element()?;
    let name = String::from_utf8_lossy(name).into_owned();
    // Every element takes at least one byte of this payload: a larger count is a corrupt file, not an allocation.
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&c| c <= d.len())
        .ok_or_else(|| {
            format!(
                "array '{name}' of dimensions {dims:?} does not fit its {} bytes",
                d.len()
            )
        })?;
    let v = match class {
        1 => {
            // Each element is a matrix with an 8-byte tag at least: checked before `count` sizes the list of values
            // (56 bytes each), so a few compressed bytes cannot ask for gigabytes.
            let left = d.len() - r.pos.min(d.len());
            if count > left / 8 {
                return Err(format!(
                    "cell '{name}' of dimensions {dims:?} has {count} elements but only {left} bytes for them (8 or more each)"
                ));
            }
            let mut items = Vec::with_capacity(count);
            for k in 0..count {
                let (ty, cd) = r.element()?;
                if ty != MI_MATRIX {
                    return Err(format!(
                        "cell '{name}' element {k}: expected a matrix, found type {ty}"
                    ));
                }
                items.push(
                    matrix(cd, depth + 1)
                        .map_err(|e| format!("cell '{name}' element {k}: {e}"))?
                        .1,
                );
            }
            Value::Cell { dims, items }
        }
        4 => {
            let (ty, cd) = if count == 0 {
                (MI_UINT16, &[][..])
            } else {
                r.element()?
            };
            let s = match ty {
                MI_UTF8 | MI_UINT8 | MI_INT8 => String::from_utf8_lossy(cd).into_owned(),
                _ => numbers(ty, cd)?
                    .into_iter()
                    .filter_map(|c| char::from_u32(c as u32))
                    .collect(),
            };
            Value::Char(s)
        }
        6..=15 if !complex => {
            let data = if count == 0 {
                Vec::new()
            } else {
                let (ty, nd) = r.element()?;
                numbers(ty, nd)?
            };
            if data.len() != count {
                return Err(format!(
                    "array '{name}' {dims:?} holds {} values, expected {count}",
                    data.len()
                ));
            }
            Value::Num { dims, data }
        }
        c => Value::Unsupported(c as u8),
    };
    Ok((name, v))
}

#[cfg(test)]
#[path = "mat_write.rs"]
pub mod mat_write;

#[cfg(test)]
mod tests {
    use super::mat_write::{cell, chars, matrix, write};
    use super::*;

    #[test]
    fn reads_cells_of_strings_and_matrices_plain_and_compressed() {
        let v = cell(vec![
            chars("0--Parade"),
            matrix(2, 4, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
            matrix(0, 0, &[]),
        ]);
        for compress in [false, true] {
            let bytes = write(&[("x", v.clone())], compress);
            let vars = parse(&bytes).unwrap();
            let items = vars["x"].cells("x").unwrap();
            assert_eq!(items[0].text("s").unwrap(), "0--Parade");
            assert_eq!(
                items[1].rows("m", 4).unwrap(),
                vec![vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 8.0]]
            );
            assert!(items[2].rows("e", 4).unwrap().is_empty());
        }
    }

    /// Found auditing the readers: each nested cell cost a stack frame, so a small (compressed) file nesting cells
    /// a few hundred thousand deep overflowed the stack. Now nesting is bounded and the error says so.
    #[test]
    fn deeply_nested_cells_are_an_error() {
        let nest = |depth: usize| (0..depth).fold(chars("x"), |v, _| cell(vec![v]));
        for compress in [false, true] {
            assert!(parse(&write(&[("x", nest(MAX_DEPTH))], compress)).is_ok());
            let e = parse(&write(&[("x", nest(MAX_DEPTH + 1))], compress)).unwrap_err();
            assert!(e.contains("nested more than 64 deep"), "{e}");
        }
    }

    /// Found auditing the readers: a cell's element count was only checked against its payload's byte count, while
    /// the list of its values was reserved at 56 bytes an element, so a compressed cell of zeros claiming 10^9
    /// elements asked for 56 GB. Now each element must have its 8-byte tag's room.
    #[test]
    fn a_cell_claiming_more_elements_than_its_bytes_hold_is_an_error() {
        let mut b = write(&[("x", cell(vec![chars("a"), chars("b")]))], false);
        // The cell's dims element (miINT32, 8 bytes: 2 × 1) follows the 128-byte header, the matrix tag (8 bytes)
        // and the flags element (16 bytes): make it 100 × 1.
        let at = 128 + 8 + 16 + 8;
        assert_eq!(b[at..at + 4], 2i32.to_le_bytes());
        b[at..at + 4].copy_from_slice(&100i32.to_le_bytes());
        let e = parse(&b).unwrap_err();
        assert!(
            e.contains("cell 'x' of dimensions [100, 1] has 100 elements but only"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_what_was_expected() {
        assert!(parse(b"short").unwrap_err().contains("128-byte"));
        let mut b = write(&[("x", chars("a"))], false);
        b[126] = b'M';
        assert!(parse(&b).unwrap_err().contains("level-5"));
        let vars = parse(&write(&[("x", chars("a"))], false)).unwrap();
        assert!(vars["x"]
            .cells("face_bbx_list")
            .unwrap_err()
            .contains("face_bbx_list: expected a cell array"));
    }
}
