//! A minimal protobuf wire-format reader (and a tiny writer for tests).
//!
//! Only what the TF GraphDef and Caffe NetParameter readers need: fields are read lazily as
//! (number, wire type, value) and unknown ones are skipped by the caller. Every malformed input
//! is an error naming the absolute byte offset in the file, never a panic, so a truncated or
//! corrupt model file gives a message the user can act on.

use std::fmt;

/// A malformed protobuf message: what went wrong and the absolute byte offset where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub offset: usize,
    pub msg: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed protobuf at byte {}: {}",
            self.offset, self.msg
        )
    }
}

impl std::error::Error for WireError {}

impl WireError {
    pub fn new(offset: usize, msg: impl Into<String>) -> Self {
        WireError {
            offset,
            msg: msg.into(),
        }
    }
}

pub type WireResult<T> = std::result::Result<T, WireError>;

/// The value of one field. `Len` covers strings, bytes, sub-messages and packed repeated fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

/// One field of a message. `offset` is the absolute offset of the value (after the key), so
/// errors found while decoding it can point into the original file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
    pub offset: usize,
}

/// Reads one varint at `buf[*pos..]`; `base` turns positions into absolute file offsets.
pub fn read_varint(buf: &[u8], pos: &mut usize, base: usize) -> WireResult<u64> {
    let start = *pos;
    let mut v: u64 = 0;
    for i in 0..10 {
        let Some(&b) = buf.get(*pos) else {
            return Err(WireError::new(base + start, "truncated varint"));
        };
        *pos += 1;
        // The 10th byte may only carry the top bit of a u64.
        if i == 9 && b > 1 {
            return Err(WireError::new(base + start, "varint overflows 64 bits"));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WireError::new(base + start, "varint longer than 10 bytes"))
}

/// Iterates over the fields of one message. Yields `Err` once on malformed input, then stops.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    failed: bool,
}

impl<'a> Reader<'a> {
    /// A reader over a whole buffer (offsets count from its start).
    pub fn new(buf: &'a [u8]) -> Self {
        Self::at(buf, 0)
    }

    /// A reader over a sub-message that starts at absolute offset `base`.
    pub fn at(buf: &'a [u8], base: usize) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            failed: false,
        }
    }

    fn next_field(&mut self) -> WireResult<Field<'a>> {
        let key_at = self.base + self.pos;
        let key = read_varint(self.buf, &mut self.pos, self.base)?;
        let wire = (key & 7) as u8;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(WireError::new(
                key_at,
                format!("invalid field number {number}"),
            ));
        }
        let number = number as u32;
        let offset = self.base + self.pos;
        let value = match wire {
            0 => Value::Varint(read_varint(self.buf, &mut self.pos, self.base)?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take::<8>(number)?)),
            2 => {
                let len = read_varint(self.buf, &mut self.pos, self.base)?;
                let start = self.pos;
                let left = self.buf.len() - start;
                if len > left as u64 {
                    return Err(WireError::new(
                        offset,
                        format!(
                            "field {number}: length {len} runs past the end ({left} bytes left)"
                        ),
                    ));
                }
                self.pos += len as usize;
                return Ok(Field {
                    number,
                    value: Value::Len(&self.buf[start..self.pos]),
                    offset: self.base + start,
                });
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.take::<4>(number)?)),
            3 | 4 => {
                return Err(WireError::new(
                    key_at,
                    format!("field {number}: wire type {wire} (group) is not supported"),
                ))
            }
            _ => {
                return Err(WireError::new(
                    key_at,
                    format!("field {number}: invalid wire type {wire}"),
                ))
            }
        };
        Ok(Field {
            number,
            value,
            offset,
        })
    }

    fn take<const N: usize>(&mut self, number: u32) -> WireResult<[u8; N]> {
        let at = self.base + self.pos;
        let bytes = self.buf.get(self.pos..self.pos + N).ok_or_else(|| {
            WireError::new(at, format!("field {number}: truncated fixed{}", N * 8))
        })?;
        self.pos += N;
        Ok(bytes.try_into().expect("slice of length N"))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = WireResult<Field<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let r = self.next_field();
        self.failed = r.is_err();
        Some(r)
    }
}

impl<'a> Field<'a> {
    fn wrong(&self, want: &str) -> WireError {
        let got = match self.value {
            Value::Varint(_) => "varint",
            Value::Fixed64(_) => "fixed64",
            Value::Len(_) => "length-delimited",
            Value::Fixed32(_) => "fixed32",
        };
        WireError::new(
            self.offset,
            format!("field {}: expected {want}, found {got}", self.number),
        )
    }

    pub fn varint(&self) -> WireResult<u64> {
        match self.value {
            Value::Varint(v) => Ok(v),
            _ => Err(self.wrong("varint")),
        }
    }

    pub fn f32(&self) -> WireResult<f32> {
        match self.value {
            Value::Fixed32(v) => Ok(f32::from_bits(v)),
            _ => Err(self.wrong("fixed32 float")),
        }
    }

    pub fn bytes(&self) -> WireResult<&'a [u8]> {
        match self.value {
            Value::Len(b) => Ok(b),
            _ => Err(self.wrong("length-delimited bytes")),
        }
    }

    pub fn str(&self) -> WireResult<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|e| {
            WireError::new(
                self.offset,
                format!("field {}: string is not UTF-8 ({e})", self.number),
            )
        })
    }

    /// The fields of an embedded message.
    pub fn message(&self) -> WireResult<Reader<'a>> {
        Ok(Reader::at(self.bytes()?, self.offset))
    }

    /// Appends a repeated varint field in either packed or unpacked form.
    pub fn push_varints(&self, out: &mut Vec<u64>) -> WireResult<()> {
        match self.value {
            Value::Varint(v) => out.push(v),
            Value::Len(b) => {
                let mut pos = 0;
                while pos < b.len() {
                    out.push(read_varint(b, &mut pos, self.offset)?);
                }
            }
            _ => return Err(self.wrong("varint or packed varints")),
        }
        Ok(())
    }

    /// Appends a repeated float field in either packed or unpacked form.
    pub fn push_f32s(&self, out: &mut Vec<f32>) -> WireResult<()> {
        match self.value {
            Value::Fixed32(v) => out.push(f32::from_bits(v)),
            Value::Len(b) => {
                self.check_multiple(b, 4)?;
                out.extend(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
                );
            }
            _ => return Err(self.wrong("fixed32 or packed floats")),
        }
        Ok(())
    }

    /// Appends a repeated double field in either packed or unpacked form.
    pub fn push_f64s(&self, out: &mut Vec<f64>) -> WireResult<()> {
        match self.value {
            Value::Fixed64(v) => out.push(f64::from_bits(v)),
            Value::Len(b) => {
                self.check_multiple(b, 8)?;
                out.extend(
                    b.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap())),
                );
            }
            _ => return Err(self.wrong("fixed64 or packed doubles")),
        }
        Ok(())
    }

    fn check_multiple(&self, b: &[u8], n: usize) -> WireResult<()> {
        if !b.len().is_multiple_of(n) {
            return Err(WireError::new(
                self.offset,
                format!(
                    "field {}: packed length {} is not a multiple of {n}",
                    self.number,
                    b.len()
                ),
            ));
        }
        Ok(())
    }
}

/// Builds protobuf messages; used by tests to write synthetic model files.
pub mod write {
    /// Appends `v` as a varint.
    pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A message under construction; methods append one field and return `self` for chaining.
    #[derive(Debug, Clone, Default)]
    pub struct Msg {
        pub buf: Vec<u8>,
    }

    impl Msg {
        pub fn new() -> Self {
            Self::default()
        }

        fn key(&mut self, number: u32, wire: u8) {
            put_varint(&mut self.buf, (u64::from(number) << 3) | u64::from(wire));
        }

        pub fn varint(&mut self, number: u32, v: u64) -> &mut Self {
            self.key(number, 0);
            put_varint(&mut self.buf, v);
            self
        }

        pub fn fixed32(&mut self, number: u32, v: u32) -> &mut Self {
            self.key(number, 5);
            self.buf.extend_from_slice(&v.to_le_bytes());
            self
        }

        pub fn fixed64(&mut self, number: u32, v: u64) -> &mut Self {
            self.key(number, 1);
            self.buf.extend_from_slice(&v.to_le_bytes());
            self
        }

        pub fn f32(&mut self, number: u32, v: f32) -> &mut Self {
            self.fixed32(number, v.to_bits())
        }

        pub fn f64(&mut self, number: u32, v: f64) -> &mut Self {
            self.fixed64(number, v.to_bits())
        }

        pub fn bytes(&mut self, number: u32, b: &[u8]) -> &mut Self {
            self.key(number, 2);
            put_varint(&mut self.buf, b.len() as u64);
            self.buf.extend_from_slice(b);
            self
        }

        pub fn string(&mut self, number: u32, s: &str) -> &mut Self {
            self.bytes(number, s.as_bytes())
        }

        pub fn message(&mut self, number: u32, m: &Msg) -> &mut Self {
            self.bytes(number, &m.buf)
        }

        pub fn packed_varints(&mut self, number: u32, vs: &[u64]) -> &mut Self {
            let mut b = Vec::new();
            for &v in vs {
                put_varint(&mut b, v);
            }
            self.bytes(number, &b)
        }

        pub fn packed_f32(&mut self, number: u32, vs: &[f32]) -> &mut Self {
            let b: Vec<u8> = vs.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.bytes(number, &b)
        }

        pub fn packed_f64(&mut self, number: u32, vs: &[f64]) -> &mut Self {
            let b: Vec<u8> = vs.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.bytes(number, &b)
        }

        pub fn finish(&self) -> Vec<u8> {
            self.buf.clone()
        }
    }
}
