//! What each fuzz target does with one input, and what must hold afterwards. Shared by the `cargo fuzz` targets and
//! by `tests/fuzz_corpus.rs`, which runs the committed corpus through the same checks on the stable toolchain. Any
//! panic here (an assertion, an index out of bounds, an overflow) is a bug in a reader.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use sshface::convert::caffe::{convert_caffe, convert_caffe_with};
use sshface::convert::protobuf::Reader;
use sshface::convert::tf_graph::{convert_tf_graph, convert_tf_graph_with};
use sshface::convert::Converted;
use sshface::gpu::DType;
use sshface::model::retinaface_mnv2::RetinaFaceMnv2;
use sshface::model::ssh_vgg16::SshVgg16;
use sshface::model::weights::WeightFile;
use sshface::readers::mat::{self, Value};
use sshface::train::data::parse_wider_train;
use sshface::{AdapterOptions, Error, GpuContext};

#[path = "../../tests/convert/tables.rs"]
mod tables;
pub use tables::{CAFFE_TABLE, TF_TABLE};

/// The pixel limit of [`image`]: small enough that the fuzzer spends its time parsing, not filling canvases.
pub const MAX_PIXELS: u64 = 1 << 22;

/// wgpu's no-op device, made once per process: uploads and graphs work, nothing runs.
pub fn noop() -> &'static Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        let opts = AdapterOptions {
            backends: Some(wgpu::Backends::NOOP),
            adapter_name: Some("noop".into()),
            ..AdapterOptions::default()
        };
        Arc::new(GpuContext::new(&opts).expect("wgpu's no-op device (feature `noop`)"))
    })
}

/// The protobuf wire reader: every field of every nested message, read as each type it could be.
pub fn protobuf(data: &[u8]) {
    fn walk(r: Reader, depth: usize, len: usize) {
        for f in r {
            let Ok(f) = f else { return };
            assert!(
                f.offset <= len,
                "field offset {} past {len} bytes",
                f.offset
            );
            let _ = (f.varint(), f.f32(), f.str());
            let (mut v, mut s, mut d) = (Vec::new(), Vec::new(), Vec::new());
            let _ = f.push_varints(&mut v);
            let _ = f.push_f32s(&mut s);
            let _ = f.push_f64s(&mut d);
            // A value takes at least one byte of the input.
            assert!(v.len() <= len && s.len() <= len && d.len() <= len);
            if let (true, Ok(m)) = (depth < 16, f.message()) {
                walk(m, depth + 1, len);
            }
        }
    }
    walk(Reader::new(data), 0, data.len());
}

fn check_converted(c: &Converted) {
    for (name, shape, values) in &c.tensors {
        assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{name} holds a non-finite value"
        );
    }
}

/// The TF GraphDef converter with the real RetinaFace table and with [`TF_TABLE`].
pub fn tf_graph(data: &[u8]) {
    let _ = convert_tf_graph(data, "fuzz.pb");
    if let Ok(c) = convert_tf_graph_with(data, "fuzz.pb", &TF_TABLE) {
        check_converted(&c);
    }
}

/// The Caffe converter with the real SSH-VGG16 table and with [`CAFFE_TABLE`].
pub fn caffe(data: &[u8]) {
    let _ = convert_caffe(data, "fuzz.caffemodel");
    if let Ok(c) = convert_caffe_with(data, "fuzz.caffemodel", &CAFFE_TABLE) {
        check_converted(&c);
    }
}

/// The safetensors loader (header, dtypes, the non-finite check), then both networks' load path (every
/// shape-checked `get`, the unknown-tensor check, the uploads) on the no-op device.
pub fn weights(data: &[u8]) {
    let Ok(wf) = WeightFile::from_bytes("fuzz.safetensors", data) else {
        return;
    };
    for name in wf.names() {
        let shape = wf
            .shape(&name)
            .expect("a listed tensor has a shape")
            .to_vec();
        let values = wf
            .get(&name, &shape)
            .expect("a tensor's own shape is accepted");
        assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{name} holds a non-finite value"
        );
        let mut wrong = shape.clone();
        wrong.push(1);
        assert!(wf.get(&name, &wrong).is_err());
    }
    for maps in [DType::F32, DType::F16] {
        let _ = RetinaFaceMnv2::load(noop(), &wf, maps);
        let _ = SshVgg16::load(noop(), &wf, maps);
    }
}

/// The MAT-file reader and the accessors `eval --gt` reads WIDER FACE's ground truth with.
pub fn mat(data: &[u8]) {
    fn visit(v: &Value) {
        let _ = (v.text("x"), v.numbers("x"));
        for cols in [1, 4, 10] {
            let _ = v.rows("x", cols);
        }
        if let Value::Num { dims, .. } = v {
            if let [_, cols] = dims[..] {
                let _ = v.rows("x", cols);
            }
        }
        if let Ok(items) = v.cells("x") {
            items.iter().for_each(visit);
        }
    }
    if let Ok(vars) = mat::parse(data) {
        vars.values().for_each(visit);
    }
}

/// The tar stream of `detect`'s `.tar` units: entry headers, names, sizes, data.
pub fn tar(data: &[u8]) {
    let mut total = 0;
    let _ = sshface::readers::tar::read_images("fuzz.tar", data, |name, bytes| {
        assert!(name.starts_with("fuzz.tar/"), "{name}");
        total += bytes.map_or(0, |b| b.len());
        true
    });
    assert!(
        total <= data.len(),
        "{total} entry bytes from {} bytes",
        data.len()
    );
}

/// Image decoding up to the packed input: format sniffing, the pixel limit, every decoder, EXIF orientation, RGB8,
/// partial (truncated) decodes, and the u32 packing uploaded to the GPU.
pub fn image(data: &[u8]) {
    let Ok(d) = sshface::image_io::decode_rgb_checked("fuzz", data, Some(MAX_PIXELS)) else {
        return;
    };
    let (w, h) = d.image.dimensions();
    assert!(u64::from(w) * u64::from(h) <= MAX_PIXELS, "{w}x{h}");
    let raw = d.image.as_raw();
    assert_eq!(raw.len(), w as usize * h as usize * 3);
    let packed = sshface::ops::preprocess::pack_rgb8(raw);
    assert_eq!(packed.len(), raw.len().div_ceil(4));
}

/// The WIDER FACE training annotations `sshface train --data` reads (`wider_face_train_bbx_gt.txt`), as text: any
/// bytes, decoded lossily as a file of them would be by an editor. Records, counts (a huge one must not allocate),
/// face lines; an error names the file and a line of the text, or the one past its end.
pub fn wider_train(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    match parse_wider_train(&text, Path::new("fuzz.txt")) {
        Ok(anns) => {
            // Each record takes a path line, a count line, and a line per face or the placeholder of an empty one.
            let faces: usize = anns.iter().map(|a| a.faces_xywh.len().max(1)).sum();
            assert!(
                2 * anns.len() + faces <= lines,
                "{} records of {faces} face lines from {lines} lines",
                anns.len()
            );
            for a in &anns {
                assert!(
                    !a.path.as_os_str().is_empty() && !a.path.is_absolute(),
                    "{:?}",
                    a.path
                );
            }
        }
        Err(Error::Parse { file, line, .. }) => {
            assert_eq!(file, "fuzz.txt");
            assert!((1..=lines + 1).contains(&line), "line {line} of {lines}");
        }
        Err(e) => panic!("not a parse error: {e}"),
    }
}
