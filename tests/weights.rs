//! `WeightFile`: shape-checked lookup through prefixes, unknown-tensor detection, F16 widening,
//! rejected dtypes, and corrupt files. CPU-only: always runs.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorView};
use sshface::model::weights::WeightFile;

/// Serialises (name, dtype, shape, raw little-endian bytes) as safetensors.
fn file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let meta = HashMap::from([("format".to_string(), "test".to_string())]);
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn model() -> WeightFile {
    let bytes = file(&[
        (
            "m1.ssh_3x3.weight",
            Dtype::F32,
            vec![2, 1, 3, 3],
            f32s(&[0.5; 18]),
        ),
        ("m1.ssh_3x3.bias", Dtype::F32, vec![2], f32s(&[1.0, -1.0])),
        ("conv1_1.weight", Dtype::F32, vec![1, 1, 1, 1], f32s(&[7.0])),
    ]);
    WeightFile::from_bytes("model.safetensors", &bytes).unwrap()
}

fn err<T: std::fmt::Debug>(r: sshface::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn prefixes_and_shape_checked_get() {
    let wf = model();
    let m1 = wf.pp("m1");
    let conv = m1.pp("ssh_3x3");
    assert_eq!(conv.prefix(), "m1.ssh_3x3");
    assert_eq!(conv.name("weight"), "m1.ssh_3x3.weight");
    assert_eq!(conv.get("bias", &[2]).unwrap(), [1.0, -1.0]);
    assert_eq!(conv.get("weight", &[2, 1, 3, 3]).unwrap().len(), 18);
    assert_eq!(
        wf.pp("").get("conv1_1.weight", &[1, 1, 1, 1]).unwrap(),
        [7.0]
    );
    assert_eq!(
        wf.names(),
        ["conv1_1.weight", "m1.ssh_3x3.bias", "m1.ssh_3x3.weight"]
    );
    assert_eq!(wf.shape("m1.ssh_3x3.bias"), Some(&[2usize][..]));
    assert_eq!(wf.metadata()["format"], "test");
    assert_eq!(wf.label(), "model.safetensors");
    wf.check_all_used().unwrap();
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let wf = model();
    assert_eq!(
        err(wf.pp("m2").pp("ssh_3x3").get("weight", &[2, 1, 3, 3])),
        "weights model.safetensors: missing tensor m2.ssh_3x3.weight (expected shape [2, 1, 3, 3])"
    );
    assert_eq!(
        err(wf.pp("m1.ssh_3x3").get("weight", &[2, 1, 1, 1])),
        "weights model.safetensors: m1.ssh_3x3.weight: expected shape [2, 1, 1, 1], found [2, 1, 3, 3]"
    );
}

#[test]
fn unknown_tensors_are_rejected_by_name() {
    let wf = model();
    wf.get("m1.ssh_3x3.weight", &[2, 1, 3, 3]).unwrap();
    let e = err(wf.check_all_used());
    assert!(
        e.contains("model.safetensors") && e.contains("2 unknown"),
        "{e}"
    );
    assert!(
        e.contains("conv1_1.weight") && e.contains("m1.ssh_3x3.bias"),
        "{e}"
    );
    assert!(!e.contains("m1.ssh_3x3.weight"), "{e}");
    // A get that failed on shape still counts as asked for (the shape error is the real report).
    let _ = wf.get("conv1_1.weight", &[3]);
    wf.get("m1.ssh_3x3.bias", &[2]).unwrap();
    wf.check_all_used().unwrap();
}

#[test]
fn f16_is_widened_exactly() {
    // (bits, value): one, −two, half, max, smallest subnormal, largest subnormal, −0, −max. (Infinities and NaN are
    // refused at load: `non_finite_values_are_refused_naming_the_tensor`.)
    let cases: [(u16, f32); 8] = [
        (0x3c00, 1.0),
        (0xc000, -2.0),
        (0x3800, 0.5),
        (0x7bff, 65504.0),
        (0x0001, 1.0 / 16_777_216.0),
        (0x03ff, 1023.0 / 16_777_216.0),
        (0x8000, -0.0),
        (0xfbff, -65504.0),
    ];
    let raw: Vec<u8> = cases.iter().flat_map(|(b, _)| b.to_le_bytes()).collect();
    let bytes = file(&[("h", Dtype::F16, vec![8], raw)]);
    let wf = WeightFile::from_bytes("half.safetensors", &bytes).unwrap();
    let got = wf.get("h", &[8]).unwrap();
    for (i, (b, want)) in cases.iter().enumerate() {
        assert_eq!(
            got[i].to_bits(),
            want.to_bits(),
            "f16 {b:#06x}: got {}, want {want}",
            got[i]
        );
    }
    assert_eq!(got[4], 2f32.powi(-24));
}

/// NaN and ±infinity, stored as F32 or F16, anywhere in any tensor: the file is refused with the tensor's name, the
/// element and the value, whether it comes from bytes (the bundled path) or from a file (`--weights`).
#[test]
fn non_finite_values_are_refused_naming_the_tensor() {
    let f16 = |bits: u16| bits.to_le_bytes().to_vec();
    let cases: [(Dtype, Vec<u8>, &str); 6] = [
        (Dtype::F32, f32s(&[f32::NAN]), "NaN"),
        (Dtype::F32, f32s(&[f32::INFINITY]), "inf"),
        (Dtype::F32, f32s(&[f32::NEG_INFINITY]), "-inf"),
        (Dtype::F16, f16(0x7e00), "NaN"),
        (Dtype::F16, f16(0x7c00), "inf"),
        (Dtype::F16, f16(0xfc00), "-inf"),
    ];
    let dir = std::env::temp_dir().join(format!("sshface-{}-nonfinite", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (k, (dtype, bad, shown)) in cases.into_iter().enumerate() {
        let size = bad.len();
        // Three finite values, then the bad one at element 3 of the second tensor.
        let mut data = match dtype {
            Dtype::F32 => f32s(&[0.5, -1.0, 2.0]),
            _ => [0x3800u16, 0xbc00, 0x4000]
                .iter()
                .flat_map(|b| b.to_le_bytes())
                .collect(),
        };
        data.extend(&bad);
        let bytes = file(&[
            ("conv1_1.weight", dtype, vec![1], data[..size].to_vec()),
            ("m2.ssh_5x5.bias", dtype, vec![4], data),
        ]);
        let want =
            format!("tensor m2.ssh_5x5.bias holds the non-finite value {shown} at element 3");
        let e = err(WeightFile::from_bytes("nan.safetensors", &bytes));
        assert!(
            e.contains("nan.safetensors") && e.contains(&want),
            "{dtype:?} {shown}: {e}"
        );
        let p = dir.join(format!("nan{k}.safetensors"));
        std::fs::write(&p, &bytes).unwrap();
        let e = err(WeightFile::open(&p));
        assert!(
            e.contains(&format!("nan{k}.safetensors")) && e.contains(&want),
            "{e}"
        );
    }
}

#[test]
fn other_dtypes_are_rejected_naming_tensor_and_dtype() {
    for (dtype, size) in [(Dtype::I64, 8), (Dtype::BF16, 2), (Dtype::F64, 8)] {
        let bytes = file(&[
            ("ok", Dtype::F32, vec![1], f32s(&[1.0])),
            ("step", dtype, vec![2], vec![0; 2 * size]),
        ]);
        let e = err(WeightFile::from_bytes("odd.safetensors", &bytes));
        assert!(
            e.contains("odd.safetensors")
                && e.contains("tensor step")
                && e.contains(&format!("{dtype}")),
            "{e}"
        );
    }
}

#[test]
fn corrupt_and_truncated_files_are_errors_naming_the_file() {
    let good = file(&[("w", Dtype::F32, vec![4], f32s(&[1.0, 2.0, 3.0, 4.0]))]);
    for n in 0..good.len() {
        let e = err(WeightFile::from_bytes("cut.safetensors", &good[..n]));
        assert!(e.contains("cut.safetensors"), "{n}: {e}");
    }
    let mut huge_header = good.clone();
    huge_header[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(
        err(WeightFile::from_bytes("hdr.safetensors", &huge_header)).contains("hdr.safetensors")
    );
    let mut bad_json = good.clone();
    bad_json[8] = b'[';
    assert!(err(WeightFile::from_bytes("json.safetensors", &bad_json)).contains("json.safetensors"));

    let dir = std::env::temp_dir().join(format!("sshface-{}-weights", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in [
        ("short.safetensors", &good[..5]),
        ("cut.safetensors", &good[..good.len() - 3]),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = err(WeightFile::open(&p));
        assert!(e.contains(name), "{e}");
    }
    let e = err(WeightFile::open(&dir.join("absent.safetensors")));
    assert!(e.contains("absent.safetensors"), "{e}");
    let p = dir.join("good.safetensors");
    std::fs::write(&p, &good).unwrap();
    assert_eq!(
        WeightFile::open(&p).unwrap().get("w", &[4]).unwrap(),
        [1.0, 2.0, 3.0, 4.0]
    );
}
