//! The Caffe converter on a synthetic ImageNet VGG-16 (`VGG_ILSVRC_16_layers.caffemodel`, as `sshface train --init`
//! takes it): the 13 convolutions with their real shapes and random values, in the current `layer` and the legacy V1
//! `layers` form (the released file's), with ReLU/pooling/dropout layers and a classifier (fc6–fc8, small fake
//! shapes: the converter ignores them) around them. Then what it must refuse, and the written file as the weight
//! loader reads it.

use std::sync::OnceLock;

use sshface::convert::caffe::{convert_caffe, VGG16_IMAGENET};
use sshface::convert::protobuf::write::Msg;
use sshface::convert::{convert_file, Format};
use sshface::model::weights::WeightFile;

use super::caffe_msg::{blob, layer, zeros_layer, B};
use super::{assert_err, scratch};

/// How [`vgg_net`] writes one of the 13 convolutions instead of with its real shape and values.
#[derive(Clone, Copy)]
enum Conv {
    /// Not at all.
    Missing,
    /// Zeros of this weight shape (bias of its first dim).
    Shape([usize; 4]),
}

/// Per conv: (OIHW weight, bias), uniform in ±0.05 from a fixed xorshift stream, so every value differs and a swapped
/// layer or blob is caught. About 14.7M floats: made once for all tests.
fn values() -> &'static [(Vec<f32>, Vec<f32>)] {
    static V: OnceLock<Vec<(Vec<f32>, Vec<f32>)>> = OnceLock::new();
    V.get_or_init(|| {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        };
        VGG16_IMAGENET
            .layers
            .iter()
            .map(|l| {
                let n: usize = l.weight.iter().product();
                let w = (0..n).map(|_| next()).collect();
                (w, (0..l.weight[0]).map(|_| next()).collect())
            })
            .collect()
    })
}

/// The blobs of a layer with weight shape `s` and values `w`, `b`: legacy 4-D dims in the V1 form, as Caffe wrote.
fn wb(legacy: bool, s: &[usize], w: &[f32], b: &[f32]) -> [Msg; 2] {
    let enc = if legacy { B::Legacy } else { B::Packed };
    [blob(enc, s, w), blob(enc, &[s[0]], b)]
}

/// An ImageNet VGG-16 as released: data, each conv with its ReLU, a pooling after each block, then the classifier
/// fc6/fc7/fc8 (ReLU and dropout between, softmax at the end). `change` is a conv written otherwise; `extra` are
/// convolutions (name, weight shape) of zeros appended after conv5_3.
fn vgg_net(legacy: bool, change: Option<(&str, Conv)>, extra: &[(&str, [usize; 4])]) -> Vec<u8> {
    let mut net = Msg::new();
    net.string(1, "VGG_ILSVRC_16_layers");
    layer(&mut net, legacy, "data", &[]);
    for (k, (l, (w, b))) in VGG16_IMAGENET.layers.iter().zip(values()).enumerate() {
        match change.filter(|c| c.0 == l.name).map(|c| c.1) {
            None => layer(&mut net, legacy, l.name, &wb(legacy, &l.weight, w, b)),
            Some(Conv::Missing) => {}
            Some(Conv::Shape(s)) => zeros_layer(&mut net, legacy, l.name, &s, s[0]),
        }
        layer(&mut net, legacy, &format!("relu{}", &l.name[4..]), &[]);
        // Blocks end after conv1_2, conv2_2, conv3_3, conv4_3, conv5_3.
        if [1, 3, 6, 9, 12].contains(&k) {
            layer(&mut net, legacy, &format!("pool{}", &l.name[4..5]), &[]);
        }
    }
    for (name, s) in extra {
        zeros_layer(&mut net, legacy, name, s, s[0]);
    }
    for (name, out, inp) in [("fc6", 8, 16), ("fc7", 8, 8), ("fc8", 4, 8)] {
        let ramp: Vec<f32> = (0..out * inp).map(|i| i as f32 * 0.01).collect();
        layer(
            &mut net,
            legacy,
            name,
            &wb(legacy, &[out, inp], &ramp, &ramp[..out]),
        );
        if name != "fc8" {
            layer(&mut net, legacy, &format!("relu{}", &name[2..]), &[]);
            layer(&mut net, legacy, &format!("drop{}", &name[2..]), &[]);
        }
    }
    layer(&mut net, legacy, "prob", &[]);
    net.finish()
}

/// The converter's verdict on the caffemodel `net` named `file`: its number of tensors, or the error.
fn convert(net: &[u8], file: &str) -> sshface::Result<usize> {
    convert_caffe(net, file).map(|c| c.tensors.len())
}

#[test]
fn imagenet_vgg16_exports_its_13_convolutions_in_both_forms() {
    for legacy in [false, true] {
        let form = if legacy { "V1 layers" } else { "layer" };
        let c = convert_caffe(
            &vgg_net(legacy, None, &[]),
            "VGG_ILSVRC_16_layers.caffemodel",
        )
        .unwrap_or_else(|e| panic!("{form}: {e}"));
        assert_eq!(c.tensors.len(), 26, "{form}");
        for (k, (l, (w, b))) in VGG16_IMAGENET.layers.iter().zip(values()).enumerate() {
            let (wt, bt) = (&c.tensors[2 * k], &c.tensors[2 * k + 1]);
            assert_eq!(wt.0, format!("{}.weight", l.name), "{form}");
            assert_eq!(bt.0, format!("{}.bias", l.name), "{form}");
            assert_eq!(
                (&wt.1, &bt.1),
                (&l.weight.to_vec(), &vec![l.weight[0]]),
                "{form} {}",
                l.name
            );
            // Exact: the converter copies the stored f32 values.
            assert!(
                wt.2 == *w && bt.2 == *b,
                "{form}: values of {} differ",
                l.name
            );
        }
        let notes = c.notes.join("\n");
        assert!(
            notes.contains("ImageNet VGG-16: exported conv1_1 … conv5_3 (26 tensors) for `sshface train --init`")
                && notes.contains("fc6, fc7, fc8 ignored"),
            "{form}: {notes}"
        );
        assert_eq!(c.metadata["model"], "vgg16-imagenet", "{form}");
        assert_eq!(
            c.metadata["source"], "VGG_ILSVRC_16_layers.caffemodel",
            "{form}"
        );
    }
}

#[test]
fn vgg16_without_conv3_2_is_an_error_naming_it() {
    for legacy in [false, true] {
        let net = vgg_net(legacy, Some(("conv3_2", Conv::Missing)), &[]);
        assert_err(
            convert(&net, "vgg.caffemodel"),
            &[
                "vgg.caffemodel",
                "missing layer conv3_2",
                "expected weight shape [256, 256, 3, 3], bias [256]",
                "read as an ImageNet VGG-16",
            ],
        );
    }
}

#[test]
fn vgg16_with_a_wrong_shape_is_an_error_naming_both_shapes() {
    // Fewer values than conv4_1 holds, in both forms (legacy dims are 4-D already).
    for legacy in [false, true] {
        let net = vgg_net(
            legacy,
            Some(("conv4_1", Conv::Shape([512, 128, 3, 3]))),
            &[],
        );
        assert_err(
            convert(&net, "vgg.caffemodel"),
            &[
                "layer conv4_1",
                "[512, 128, 3, 3]",
                "expected shape [512, 256, 3, 3]",
                "ImageNet VGG-16",
            ],
        );
    }
    // The right number of values in another layout (input and output channels swapped).
    let net = vgg_net(false, Some(("conv2_1", Conv::Shape([64, 128, 3, 3]))), &[]);
    assert_err(
        convert(&net, "vgg.caffemodel"),
        &[
            "layer conv2_1",
            "blob 0 has shape [64, 128, 3, 3]",
            "expected shape [128, 64, 3, 3]",
        ],
    );
}

#[test]
fn an_unknown_convolution_in_a_vgg16_is_refused() {
    // Only the classifier is skipped: a convolution of no table is a different network, in either form.
    for legacy in [false, true] {
        let net = vgg_net(legacy, None, &[("conv6", [4, 512, 3, 3])]);
        assert_err(
            convert(&net, "vgg.caffemodel"),
            &[
                "layer conv6 (Convolution) has 2 blob(s) but is not part of the model",
                "ImageNet VGG-16",
            ],
        );
    }
}

#[test]
fn a_file_with_ssh_layers_is_still_read_as_ssh() {
    // VGG's convs plus one of SSH's own layers: an SSH model with layers missing, reported as before.
    let net = vgg_net(false, None, &[("conv4_128", [128, 512, 1, 1])]);
    let msg = convert(&net, "ssh.caffemodel").unwrap_err().to_string();
    assert!(
        msg.contains("layer fc6 (InnerProduct) has 2 blob(s) but is not part of the model")
            && !msg.contains("VGG"),
        "{msg}"
    );
    let mut ssh = Msg::new();
    let (w, b) = &values()[0];
    layer(&mut ssh, false, "conv1_1", &wb(false, &[64, 3, 3, 3], w, b));
    layer(&mut ssh, false, "m1@ssh_3x3_relu", &[]);
    let msg = convert(&ssh.finish(), "ssh.caffemodel")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("missing layer conv1_2 (tensors conv1_2.weight/.bias; expected weight shape [64, 64, 3, 3], bias [64])")
            && !msg.contains("VGG"),
        "{msg}"
    );
}

/// `sshface convert --from caffe` writes a file the weight loader reads back: the 26 tensors with their shapes and
/// values, and the model in the metadata. CPU-only: `WeightFile` needs no GPU.
#[test]
fn converted_vgg16_file_loads_as_a_weight_file() {
    let dir = scratch("vgg16-convert");
    let (input, output) = (
        dir.join("VGG_ILSVRC_16_layers.caffemodel"),
        dir.join("vgg16.safetensors"),
    );
    std::fs::write(&input, vgg_net(true, None, &[])).unwrap();
    let report = convert_file(Format::Caffe, &input, &output).unwrap();
    assert_eq!(report.tensors, 26);
    assert!(
        report.notes[0].starts_with("ImageNet VGG-16"),
        "{:?}",
        report.notes
    );
    let wf = WeightFile::open(&output).unwrap();
    assert_eq!(wf.names().len(), 26, "{:?}", wf.names());
    for (l, (w, b)) in VGG16_IMAGENET.layers.iter().zip(values()) {
        assert!(
            wf.get(&format!("{}.weight", l.name), &l.weight).unwrap() == &w[..],
            "{}",
            l.name
        );
        assert!(
            wf.get(&format!("{}.bias", l.name), &[l.weight[0]]).unwrap() == &b[..],
            "{}",
            l.name
        );
    }
    assert_eq!(wf.metadata()["model"], "vgg16-imagenet");
    std::fs::remove_dir_all(&dir).unwrap();
}
