//! A minimal level-5 MAT writer for test fixtures (cell arrays of char arrays and double matrices, as WIDER FACE's
//! ground truth holds), so tests build their ground truth by hand instead of committing opaque binaries. Shared by
//! the unit tests of `mat.rs` and `tests/eval_ap.rs`.

use std::io::Write;

/// A value to write.
#[derive(Clone, Debug)]
pub enum M {
    /// rows, cols, row-major values.
    Num(usize, usize, Vec<f64>),
    Char(String),
    Cell(Vec<M>),
}

pub fn cell(items: Vec<M>) -> M {
    M::Cell(items)
}
pub fn chars(s: &str) -> M {
    M::Char(s.to_string())
}
/// A rows×cols double matrix from row-major values.
pub fn matrix(rows: usize, cols: usize, v: &[f64]) -> M {
    M::Num(rows, cols, v.to_vec())
}

fn element(out: &mut Vec<u8>, ty: u32, data: &[u8]) {
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(8), 0);
}

fn matrix_element(name: &str, v: &M) -> Vec<u8> {
    let (class, dims, body): (u32, [u32; 2], Vec<u8>) = match v {
        M::Num(r, c, vals) => {
            // MAT files store column-major.
            let mut b = Vec::new();
            for j in 0..*c {
                for i in 0..*r {
                    b.extend_from_slice(&vals[i * c + j].to_le_bytes());
                }
            }
            let mut e = Vec::new();
            if !b.is_empty() {
                element(&mut e, 9, &b);
            }
            (6, [*r as u32, *c as u32], e)
        }
        M::Char(s) => {
            let b: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            let mut e = Vec::new();
            element(&mut e, 4, &b);
            (4, [1, s.encode_utf16().count() as u32], e)
        }
        M::Cell(items) => {
            let mut e = Vec::new();
            for it in items {
                e.extend_from_slice(&matrix_element("", it));
            }
            (1, [items.len() as u32, 1], e)
        }
    };
    let mut p = Vec::new();
    element(
        &mut p,
        6,
        &[class.to_le_bytes(), 0u32.to_le_bytes()].concat(),
    );
    element(
        &mut p,
        5,
        &[dims[0].to_le_bytes(), dims[1].to_le_bytes()].concat(),
    );
    element(&mut p, 1, name.as_bytes());
    p.extend_from_slice(&body);
    let mut out = Vec::new();
    element(&mut out, 14, &p);
    out
}

/// The bytes of a MAT file holding `vars`, each variable zlib-compressed (as MATLAB's default -v7) or not.
pub fn write(vars: &[(&str, M)], compress: bool) -> Vec<u8> {
    let mut out = format!("{:<116}", "MATLAB 5.0 MAT-file, written by sshface tests").into_bytes();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    for (name, v) in vars {
        let m = matrix_element(name, v);
        if compress {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(&m).unwrap();
            let z = z.finish().unwrap();
            out.extend_from_slice(&15u32.to_le_bytes());
            out.extend_from_slice(&(z.len() as u32).to_le_bytes());
            out.extend_from_slice(&z);
        } else {
            out.extend_from_slice(&m);
        }
    }
    out
}
