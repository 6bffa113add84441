//! Caffe caffemodel → safetensors on small synthetic files (an injected table with tiny shapes),
//! in the current `layer` and legacy `layers` forms, with weight-sharing copies and every error.

use sshface::convert::caffe::{
    bilinear_kernel, caffe_name, convert_caffe_with, export_name, SSH_VGG16, SSH_VGG16_LAYERS,
};
use sshface::convert::protobuf::write::Msg;
use sshface::convert::Converted;

use super::assert_err;
use super::caffe_msg::{blob, layer, zeros_layer, B};
use super::tables::{CAFFE_LAYERS as LAYERS, CAFFE_TABLE as TABLE};

/// Distinct values per layer and position, so a swapped blob or layer is caught.
fn vals(layer: usize, blob: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| layer as f32 * 100.0 + blob as f32 * 10.0 + i as f32 * 0.01)
        .collect()
}

fn wb(k: usize) -> (Vec<f32>, Vec<f32>) {
    let s = LAYERS[k].weight;
    (vals(k, 0, s.iter().product()), vals(k, 1, s[0]))
}

fn conv(net: &mut Msg, legacy: bool, name: &str, k: usize, enc: B) {
    let (w, b) = wb(k);
    let s = LAYERS[k].weight;
    layer(
        net,
        legacy,
        name,
        &[blob(enc, &s, &w), blob(enc, &[s[0]], &b)],
    );
}

fn deconv(net: &mut Msg, legacy: bool, data: &[f32]) {
    layer(
        net,
        legacy,
        "conv5_128_up",
        &[blob(
            if legacy { B::Legacy } else { B::Packed },
            &[3, 1, 4, 4],
            data,
        )],
    );
}

fn bilinear3() -> Vec<f32> {
    bilinear_kernel(4).repeat(3)
}

fn check_output(c: &Converted) {
    let names: Vec<&str> = c.tensors.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1_1.weight",
            "conv1_1.bias",
            "m1.ssh_3x3.weight",
            "m1.ssh_3x3.bias",
            "m1.ssh_cls_score.weight",
            "m1.ssh_cls_score.bias"
        ]
    );
    for k in 0..3 {
        let (w, b) = wb(k);
        let s = LAYERS[k].weight;
        assert_eq!(c.tensors[2 * k].1, s.to_vec(), "{}", names[2 * k]);
        assert_eq!(c.tensors[2 * k + 1].1, vec![s[0]], "{}", names[2 * k + 1]);
        // Exact: the converter copies values (doubles hold these f32 values exactly).
        assert_eq!(c.tensors[2 * k].2, w, "{}", names[2 * k]);
        assert_eq!(c.tensors[2 * k + 1].2, b, "{}", names[2 * k + 1]);
    }
}

/// The current-form file: input/ReLU layers without blobs, the deconv, an `_ohem` copy before
/// its original, and a repeated `m1@ssh_3x3` (as in the training prototxt's `m{k}@ssh_7x7`).
fn current_net(mutate: impl Fn(&mut Msg, &str)) -> Vec<u8> {
    let mut net = Msg::new();
    net.string(1, "SSH");
    layer(&mut net, false, "data", &[]);
    for step in ["conv1_1", "relu", "deconv", "ohem", "m1", "cls", "dup"] {
        mutate(&mut net, step);
        match step {
            "conv1_1" => conv(&mut net, false, "conv1_1", 0, B::Packed),
            "relu" => layer(&mut net, false, "conv1_1_relu", &[]),
            "deconv" => deconv(&mut net, false, &bilinear3()),
            "ohem" => conv(&mut net, false, "m1@ssh_3x3_ohem", 1, B::Packed),
            "m1" => conv(&mut net, false, "m1@ssh_3x3", 1, B::Unpacked),
            "cls" => conv(&mut net, false, "m1@ssh_cls_score", 2, B::Double),
            _ => conv(&mut net, false, "m1@ssh_3x3", 1, B::Packed),
        }
    }
    net.finish()
}

#[test]
fn current_layer_form_with_copies() {
    let c = convert_caffe_with(&current_net(|_, _| {}), "ssh.caffemodel", &TABLE).unwrap();
    check_output(&c);
    let notes = c.notes.join("\n");
    assert!(
        notes.contains("conv5_128_up: fixed bilinear kernel verified"),
        "{notes}"
    );
    assert!(
        notes.contains("m1@ssh_3x3_ohem: weight-sharing copy of m1@ssh_3x3, equal, skipped"),
        "{notes}"
    );
    assert_eq!(notes.matches("copy of m1@ssh_3x3").count(), 2, "{notes}");
    assert_eq!(c.metadata["source"], "ssh.caffemodel");
    assert_eq!(c.metadata["sha256"].len(), 64);
}

#[test]
fn legacy_v1_layers_form() {
    let mut net = Msg::new();
    conv(&mut net, true, "m1@ssh_cls_score", 2, B::Legacy);
    deconv(&mut net, true, &bilinear3());
    conv(&mut net, true, "conv1_1", 0, B::Legacy);
    conv(&mut net, true, "m1@ssh_3x3", 1, B::Legacy);
    layer(&mut net, true, "pool1", &[]);
    let c = convert_caffe_with(&net.finish(), "old.caffemodel", &TABLE).unwrap();
    check_output(&c);
}

#[test]
fn bad_files_are_errors_naming_the_layer_and_shape() {
    let run = |bytes: Vec<u8>| {
        convert_caffe_with(&bytes, "ssh.caffemodel", &TABLE).map(|c| c.tensors.len())
    };
    // (case, step before which the extra layer is written, writer, expected message parts)
    type W = fn(&mut Msg);
    let cases: &[(&str, &str, W, &[&str])] = &[
        (
            "bad deconv tap",
            "deconv",
            |n| {
                let mut k = bilinear3();
                k[21] = 0.5; // channel 1, tap (1, 1): 0.5625 in the bilinear kernel
                deconv(n, false, &k)
            },
            &["conv5_128_up", "channel 1, tap (1, 1)", "[3, 1, 4, 4]"],
        ),
        (
            "deconv wrong count",
            "deconv",
            |n| deconv(n, false, &[0.25; 16]),
            &["conv5_128_up", "16 values", "[3, 1, 4, 4]"],
        ),
        (
            "unknown layer with blobs",
            "relu",
            |n| layer(n, false, "fc6", &[blob(B::Packed, &[2, 2], &[1.0; 4])]),
            &["fc6", "InnerProduct", "not part of the model"],
        ),
        (
            "wrong weight count",
            "conv1_1",
            |n| zeros_layer(n, false, "conv1_1", &[4, 3, 3, 2], 4),
            &[
                "conv1_1",
                "blob 0 has 72 values",
                "[4, 3, 3, 2]",
                "expected shape [4, 3, 3, 3]",
            ],
        ),
        (
            "same count, other layout",
            "conv1_1",
            |n| zeros_layer(n, false, "conv1_1", &[3, 4, 3, 3], 4),
            &[
                "conv1_1",
                "blob 0 has shape [3, 4, 3, 3]",
                "expected shape [4, 3, 3, 3]",
            ],
        ),
        (
            "wrong bias count",
            "conv1_1",
            |n| zeros_layer(n, false, "conv1_1", &[4, 3, 3, 3], 3),
            &["conv1_1", "blob 1", "expected shape [4]"],
        ),
        (
            "one blob",
            "conv1_1",
            |n| {
                layer(
                    n,
                    false,
                    "conv1_1",
                    &[blob(B::Packed, &[4, 3, 3, 3], &[0.0; 108])],
                )
            },
            &["conv1_1", "1 blob(s), expected 2", "[4, 3, 3, 3]"],
        ),
        (
            "ohem copy differs",
            "ohem",
            |n| {
                let s = LAYERS[1].weight;
                layer(
                    n,
                    false,
                    "m1@ssh_3x3_ohem",
                    &[
                        blob(B::Packed, &s, &[0.5; 72]),
                        blob(B::Packed, &[2], &vals(1, 1, 2)),
                    ],
                )
            },
            &["m1@ssh_3x3_ohem", "m1@ssh_3x3", "differ"],
        ),
    ];
    for (case, at, write, parts) in cases {
        // Replacing: the mutated layer comes first, so a same-named original later is a copy.
        let bytes = current_net(|n, step| {
            if step == *at {
                write(n)
            }
        });
        let r = run(bytes);
        assert!(r.is_err(), "{case}: expected an error");
        assert_err(r, parts);
    }
    // A missing layer names both spellings and the shape.
    let mut net = Msg::new();
    conv(&mut net, false, "conv1_1", 0, B::Packed);
    conv(&mut net, false, "m1@ssh_3x3", 1, B::Packed);
    assert_err(
        run(net.finish()),
        &[
            "missing layer m1@ssh_cls_score",
            "m1.ssh_cls_score",
            "[4, 2, 1, 1]",
        ],
    );
}

#[test]
fn truncated_files_are_errors_not_panics() {
    // The last layer is a required one, so every proper prefix is broken or incomplete.
    let mut net = Msg::new();
    layer(&mut net, false, "data", &[]);
    conv(&mut net, false, "m1@ssh_3x3", 1, B::Packed);
    deconv(&mut net, false, &bilinear3());
    conv(&mut net, false, "m1@ssh_3x3_ohem", 1, B::Unpacked);
    conv(&mut net, false, "conv1_1", 0, B::Double);
    conv(&mut net, false, "m1@ssh_cls_score", 2, B::Unpacked);
    let bytes = net.finish();
    assert!(convert_caffe_with(&bytes, "cut.caffemodel", &TABLE).is_ok());
    for n in (0..bytes.len()).step_by(3) {
        let r = convert_caffe_with(&bytes[..n], "cut.caffemodel", &TABLE).map(|c| c.tensors.len());
        assert_err(r, &["cut.caffemodel"]);
    }
}

#[test]
fn ssh_vgg16_table_matches_the_spec() {
    assert_eq!(SSH_VGG16_LAYERS.len(), 37);
    let values: usize = SSH_VGG16_LAYERS
        .iter()
        .map(|l| l.weight.iter().product::<usize>() + l.weight[0])
        .sum();
    assert_eq!(values, 19_766_372, "spec §7 total");
    assert_eq!(SSH_VGG16.bilinear, Some(("conv5_128_up", 128)));
    let taps = [0.25f32, 0.75, 0.75, 0.25];
    let want: Vec<f32> = (0..16).map(|i| taps[i / 4] * taps[i % 4]).collect();
    assert_eq!(bilinear_kernel(4), want);
    assert_eq!(export_name("m2@ssh_7x7-1"), "m2.ssh_7x7-1");
    assert_eq!(caffe_name("m2.ssh_7x7-1"), "m2@ssh_7x7-1");
    assert_eq!(export_name("conv4_fuse_final"), "conv4_fuse_final");
}

/// A NaN or infinity in a blob (f32 or double data) is refused naming the exported tensor.
#[test]
fn non_finite_blobs_are_refused_naming_the_tensor() {
    for (enc, bad) in [
        (B::Packed, f32::NAN),
        (B::Unpacked, f32::NEG_INFINITY),
        (B::Double, f32::INFINITY),
    ] {
        let mut net = Msg::new();
        conv(&mut net, false, "conv1_1", 0, B::Packed);
        deconv(&mut net, false, &bilinear3());
        let (w, mut b) = wb(1);
        b[1] = bad;
        let s = LAYERS[1].weight;
        layer(
            &mut net,
            false,
            "m1@ssh_3x3",
            &[blob(enc, &s, &w), blob(enc, &[s[0]], &b)],
        );
        conv(&mut net, false, "m1@ssh_cls_score", 2, B::Packed);
        let r = convert_caffe_with(&net.finish(), "nan.caffemodel", &TABLE);
        assert_err(
            r.map(|c| c.tensors.len()),
            &[
                "nan.caffemodel",
                "tensor m1.ssh_3x3.bias",
                &format!("non-finite value {bad} at element 1"),
            ],
        );
    }
}
