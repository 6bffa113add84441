//! The committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets' own checks (`fuzz/src/checks.rs`),
//! on the stable toolchain: every input the fuzzers kept, and every input that once crashed a reader, must pass
//! without a panic on every CI run, also where cargo-fuzz is not installed. The seeds the fuzzers started from are
//! built here from the same synthetic files the other tests use and must be accepted by their readers; run with
//! `SSHFACE_WRITE_FUZZ_SEEDS=1` to write them into the corpus. CPU-only (wgpu's no-op device): always runs.

#[path = "../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod checks;
#[path = "../src/readers/mat_write.rs"]
mod mat_write;
#[path = "convert/tf_synth.rs"]
#[allow(dead_code)]
mod tf_synth;

use std::collections::HashMap;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, RgbImage};
use safetensors::tensor::{Dtype, TensorView};
use sshface::convert::caffe::{bilinear_kernel, convert_caffe_with};
use sshface::convert::protobuf::write::Msg;
use sshface::convert::tf_graph::convert_tf_graph_with;
use sshface::model::weights::WeightFile;
use sshface::train::data::parse_wider_train;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 8] = [
    ("protobuf", checks::protobuf),
    ("tf_graph", checks::tf_graph),
    ("caffe", checks::caffe),
    ("weights", checks::weights),
    ("mat", checks::mat),
    ("tar", checks::tar),
    ("image", checks::image),
    ("wider_train", checks::wider_train),
];

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

#[test]
fn every_corpus_input_passes_its_target() {
    let mut failed = Vec::new();
    for (target, check) in TARGETS {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus(target))
            .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            if catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err() {
                failed.push(f.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "inputs that panic: {failed:?}");
}

/// A Caffe blob: shape dims (packed) and float data (packed), or legacy 4-D dims and double data.
fn blob(legacy: bool, shape: &[usize], data: &[f32]) -> Msg {
    let mut b = Msg::new();
    if legacy {
        // Legacy blobs are 4-D, left-padded with 1s.
        let mut d4 = vec![1; 4 - shape.len()];
        d4.extend(shape);
        for (i, &d) in d4.iter().enumerate() {
            b.varint(i as u32 + 1, d as u64);
        }
        b.packed_f64(8, &data.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
    } else {
        let mut sh = Msg::new();
        sh.packed_varints(1, &shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
        b.message(7, &sh).packed_f32(5, data);
    }
    b
}

/// A caffemodel for [`checks::CAFFE_TABLE`], in the current (`layer`) or legacy V1 (`layers`) form.
fn caffemodel(legacy: bool) -> Vec<u8> {
    let mut net = Msg::new();
    net.string(1, "seed");
    let ramp = |n: usize| (0..n).map(|i| i as f32 * 0.25 - 1.0).collect::<Vec<f32>>();
    let conv = |o: usize, i: usize, k: usize| {
        vec![
            blob(legacy, &[o, i, k, k], &ramp(o * i * k * k)),
            blob(legacy, &[o], &ramp(o)),
        ]
    };
    let layers: [(&str, Vec<Msg>); 4] = [
        ("conv1_1", conv(4, 3, 3)),
        (
            "conv5_128_up",
            vec![blob(legacy, &[3, 1, 4, 4], &bilinear_kernel(4).repeat(3))],
        ),
        ("m1@ssh_3x3", conv(2, 4, 3)),
        ("m1@ssh_cls_score", conv(4, 2, 1)),
    ];
    for (name, blobs) in &layers {
        let mut l = Msg::new();
        if legacy {
            l.string(4, name).varint(5, 4);
            blobs.iter().for_each(|b| {
                l.message(6, b);
            });
            net.message(2, &l);
        } else {
            l.string(1, name).string(2, "Convolution");
            blobs.iter().for_each(|b| {
                l.message(7, b);
            });
            net.message(100, &l);
        }
    }
    net.finish()
}

fn safetensors(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let meta = HashMap::from([("source".to_string(), "seed".to_string())]);
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// The seeds: (target, name, bytes).
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut s = Vec::new();
    let graph = tf_synth::graph_bytes(&tf_synth::synth().nodes);
    s.push(("tf_graph", "synth.pb".into(), graph.clone()));
    s.push(("protobuf", "synth.pb".into(), graph));
    for legacy in [false, true] {
        let name = format!("{}.caffemodel", if legacy { "v1" } else { "current" });
        s.push(("caffe", name.clone(), caffemodel(legacy)));
        s.push(("protobuf", name, caffemodel(legacy)));
    }
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let conv1: Vec<f32> = (0..32 * 27).map(|i| (i % 7) as f32 * 0.1).collect();
    s.push((
        "weights",
        "conv1.safetensors".into(),
        safetensors(&[
            (
                "backbone.conv1.weight",
                Dtype::F32,
                vec![32, 3, 3, 3],
                f32s(&conv1),
            ),
            (
                "backbone.conv1.bias",
                Dtype::F16,
                vec![2],
                vec![0x00, 0x3c, 0x00, 0xbc],
            ),
        ]),
    ));
    use mat_write::{cell, chars, matrix, write};
    let gt = cell(vec![cell(vec![matrix(
        2,
        4,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    )])]);
    for compress in [false, true] {
        let vars = [
            ("face_bbx_list", gt.clone()),
            ("event_list", cell(vec![chars("0--Parade")])),
        ];
        s.push(("mat", format!("gt-{compress}.mat"), write(&vars, compress)));
    }
    let rgb = DynamicImage::ImageRgb8(RgbImage::from_fn(32, 24, |x, y| {
        image::Rgb([(x * 8) as u8, (y * 10) as u8, ((x * y) % 256) as u8])
    }));
    let mut t = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("a/face.png", encode(&rgb, ImageFormat::Png)),
        ("a/face.txt", b"caption".to_vec()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, name, &data[..]).unwrap();
    }
    s.push(("tar", "shard.tar".into(), t.into_inner().unwrap()));
    for (name, text) in [
        (
            "two-records.txt",
            "0--Parade/0_Parade_marchingband_1_849.jpg\n1\n449 330 122 149 0 0 0 0 0 0 \n\
             0--Parade/0_Parade_Parade_0_904.jpg\n2\n361 98 263 339 0 0 0 0 0 0 \n10 20 30 40 1 0 0 0 2 0\n",
        ),
        (
            "empty-record-crlf.txt",
            "1--Handshaking/a.jpg\r\n0\r\n0 0 0 0 0 0 0 0 0 0\r\n\r\n2--Demo/b.jpg\r\n1\r\n5 6 7 8 0 0 0 0 0 0\r\n",
        ),
        // Ends inside a record: the error path (the `bad-` seeds must be refused).
        (
            "bad-short-face.txt",
            "0--Parade/x.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n1 2 3\n",
        ),
    ] {
        s.push(("wider_train", name.into(), text.as_bytes().to_vec()));
    }
    let images = [
        ("rgb.png", rgb.clone(), ImageFormat::Png),
        (
            "gray16.png",
            DynamicImage::ImageLuma16(rgb.to_luma16()),
            ImageFormat::Png,
        ),
        (
            "rgba.png",
            DynamicImage::ImageRgba8(rgb.to_rgba8()),
            ImageFormat::Png,
        ),
        ("rgb.jpg", rgb.clone(), ImageFormat::Jpeg),
        (
            "gray.jpg",
            DynamicImage::ImageLuma8(rgb.to_luma8()),
            ImageFormat::Jpeg,
        ),
        ("rgb.bmp", rgb.clone(), ImageFormat::Bmp),
        (
            "rgb.gif",
            DynamicImage::ImageRgba8(rgb.to_rgba8()),
            ImageFormat::Gif,
        ),
        ("rgb.tif", rgb.clone(), ImageFormat::Tiff),
        ("rgb.webp", rgb.clone(), ImageFormat::WebP),
    ];
    for (name, img, format) in images {
        let bytes = encode(&img, format);
        if ["rgb.png", "gray16.png", "rgb.jpg"].contains(&name) {
            s.push((
                "image",
                format!("cut-{name}"),
                bytes[..bytes.len() * 3 / 4].to_vec(),
            ));
        }
        s.push(("image", name.to_string(), bytes));
    }
    s
}

/// Each seed is a valid input of its reader (so the fuzzers start from files that reach the deep paths), and with
/// `SSHFACE_WRITE_FUZZ_SEEDS=1` they are written to `fuzz/corpus/<target>/seed-<name>`.
#[test]
fn seeds_are_accepted_by_their_readers() {
    let write = std::env::var_os("SSHFACE_WRITE_FUZZ_SEEDS").is_some();
    for (target, name, bytes) in seeds() {
        let ok = match target {
            "tf_graph" => convert_tf_graph_with(&bytes, &name, &checks::TF_TABLE)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "caffe" => convert_caffe_with(&bytes, &name, &checks::CAFFE_TABLE)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "protobuf" => sshface::convert::protobuf::Reader::new(&bytes)
                .try_for_each(|f| f.map(|_| ()))
                .map_err(|e| e.to_string()),
            "weights" => WeightFile::from_bytes(&name, &bytes)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "mat" => sshface::readers::mat::parse(&bytes).map(|v| assert_eq!(v.len(), 2)),
            "wider_train" => {
                let text = String::from_utf8_lossy(&bytes);
                match (
                    name.starts_with("bad-"),
                    parse_wider_train(&text, Path::new(&name)),
                ) {
                    (false, r) => r
                        .map(|a| assert_eq!(a.len(), 2, "{name}"))
                        .map_err(|e| e.to_string()),
                    (true, Err(_)) => Ok(()),
                    (true, Ok(a)) => panic!("seed {name} should be refused, read {a:?}"),
                }
            }
            "tar" => {
                let mut n = 0;
                sshface::readers::tar::read_images("s.tar", &bytes[..], |_, d| {
                    n += usize::from(d.is_ok());
                    true
                })
                .map(|_| assert_eq!(n, 1))
            }
            _ => sshface::image_io::decode_rgb_checked(&name, &bytes, None)
                .map(|d| assert_eq!(d.partial.is_some(), name.starts_with("cut-"), "{name}"))
                .map_err(|e| e.to_string()),
        };
        ok.unwrap_or_else(|e| panic!("seed {target}/{name}: {e}"));
        if write {
            let dir = corpus(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{name}")), &bytes).unwrap();
        }
    }
}
