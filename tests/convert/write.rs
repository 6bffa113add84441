//! `write_safetensors` (round trip, validation, atomicity) and `convert_file`'s error paths.

use std::collections::HashMap;

use sshface::convert::{convert_file, write_safetensors, Format, NamedTensor};
use sshface::model::weights::WeightFile;

use super::{assert_err, scratch};

fn tensors() -> Vec<NamedTensor> {
    vec![
        (
            "b.weight".into(),
            vec![2, 3, 1, 1],
            (0..6).map(|i| i as f32 - 2.5).collect(),
        ),
        ("a.bias".into(), vec![2], vec![f32::MIN_POSITIVE, -0.0]),
    ]
}

#[test]
fn round_trip_keeps_values_shapes_and_metadata() {
    let dir = scratch("write-round-trip");
    let path = dir.join("out.safetensors");
    let meta = HashMap::from([("source".to_string(), "unit test".to_string())]);
    write_safetensors(&path, &tensors(), &meta).unwrap();
    let wf = WeightFile::open(&path).unwrap();
    assert_eq!(wf.names(), ["a.bias", "b.weight"]);
    for (name, shape, data) in tensors() {
        let got = wf.get(&name, &shape).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(got), bits(&data), "{name}");
    }
    assert_eq!(wf.metadata()["source"], "unit test");
    // Nothing but the output is left behind.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["out.safetensors"]);
}

#[test]
fn invalid_tensors_fail_and_leave_the_old_file_intact() {
    let dir = scratch("write-invalid");
    let path = dir.join("out.safetensors");
    write_safetensors(&path, &tensors(), &HashMap::new()).unwrap();
    let before = std::fs::read(&path).unwrap();
    let mut bad = tensors();
    bad[0].2.pop();
    assert_err(
        write_safetensors(&path, &bad, &HashMap::new()),
        &[
            "out.safetensors",
            "b.weight",
            "[2, 3, 1, 1]",
            "6 elements",
            "5 values",
        ],
    );
    let mut dup = tensors();
    dup[1].0 = "b.weight".into();
    assert_err(
        write_safetensors(&path, &dup, &HashMap::new()),
        &["b.weight", "twice"],
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // An unwritable destination is an I/O error naming the path, and leaves no temp file.
    let missing = dir.join("no-such-dir").join("out.safetensors");
    assert_err(
        write_safetensors(&missing, &tensors(), &HashMap::new()),
        &["no-such-dir"],
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn convert_file_reports_unreadable_and_garbage_inputs() {
    let dir = scratch("convert-file");
    let out = dir.join("out.safetensors");
    assert_err(
        convert_file(Format::TfGraph, &dir.join("absent.pb"), &out),
        &["absent.pb"],
    );
    let garbage = dir.join("garbage.caffemodel");
    std::fs::write(&garbage, [0x0f, 1, 2, 3]).unwrap();
    assert_err(
        convert_file(Format::Caffe, &garbage, &out),
        &["garbage.caffemodel", "wire type 7"],
    );
    // A valid but empty protobuf: the first missing layer is named.
    let empty = dir.join("empty.pb");
    std::fs::write(&empty, []).unwrap();
    assert_err(
        convert_file(Format::TfGraph, &empty, &out),
        &[
            "empty.pb",
            "backbone.conv1",
            "MobileNetV2_extrator/Conv1/Conv2D",
        ],
    );
    assert_err(
        convert_file(Format::Caffe, &empty, &out),
        &["empty.pb", "missing layer conv1_1", "[64, 3, 3, 3]"],
    );
    assert!(!out.exists(), "no output after a failed conversion");
}

#[test]
fn format_parses_cli_spellings() {
    assert_eq!("tf-graph".parse::<Format>(), Ok(Format::TfGraph));
    assert_eq!("caffe".parse::<Format>(), Ok(Format::Caffe));
    assert_eq!(Format::TfGraph.to_string(), "tf-graph");
    let e = "onnx".parse::<Format>().unwrap_err();
    assert!(e.contains("onnx") && e.contains("tf-graph"), "{e}");
}

/// The bundled weights re-written through `write_safetensors` (what `convert` ends with) come out byte for byte as
/// the bundled file, twice, and hash to the sha256 documented in weights/README.md: conversions are reproducible.
#[test]
fn writing_is_byte_reproducible_and_matches_the_documented_hash() {
    use sha2::Digest;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bundled = std::fs::read(root.join("weights/retinaface_mnv2.safetensors")).unwrap();
    let wf = WeightFile::from_bytes("bundled", &bundled).unwrap();
    let mut tensors: Vec<NamedTensor> = Vec::new();
    for name in wf.names() {
        let shape = wf.shape(&name).unwrap().to_vec();
        tensors.push((
            name.clone(),
            shape.clone(),
            wf.get(&name, &shape).unwrap().to_vec(),
        ));
    }
    // Reversed input order and a fresh map each time: neither may change a byte.
    tensors.reverse();
    let dir = scratch("reproducible");
    let mut outs = Vec::new();
    for k in 0..2 {
        let meta: HashMap<String, String> = wf.metadata().clone().into_iter().collect();
        let p = dir.join(format!("{k}.safetensors"));
        write_safetensors(&p, &tensors, &meta).unwrap();
        outs.push(std::fs::read(&p).unwrap());
    }
    assert!(outs[0] == outs[1], "two writes differ");
    assert!(
        outs[0] == bundled,
        "the re-written bundled file differs from weights/retinaface_mnv2.safetensors"
    );
    let hash = format!("{:x}", sha2::Sha256::digest(&bundled));
    let readme = std::fs::read_to_string(root.join("weights/README.md")).unwrap();
    assert!(
        readme.contains(&hash),
        "weights/README.md does not give the bundled file's sha256 {hash}"
    );
}

/// A write error names the file asked for (not the temporary beside it) and says the OS error once.
#[test]
fn write_errors_name_the_destination() {
    let e = write_safetensors(
        std::path::Path::new("/nonexistent/x.safetensors"),
        &tensors(),
        &HashMap::new(),
    )
    .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(e));
    assert!(chain.starts_with("/nonexistent/x.safetensors: "), "{chain}");
    assert!(
        !chain.contains(".tmp-") && chain.matches("os error").count() == 1,
        "{chain}"
    );
}
