//! Caffe `.caffemodel` (binary NetParameter) → safetensors, for SSH-VGG16 (ssh-vgg16 spec §7–8) and for the
//! ImageNet VGG-16 that training starts from (`VGG_ILSVRC_16_layers.caffemodel`: conv1_1 … conv5_3 only).
//!
//! Reads current (`layer`, 100) and legacy V1 (`layers`, 2) layer lists (`caffe_net.rs`). Blob 0 is the OIHW
//! weight, blob 1 the bias; element counts and dims are checked against a [`CaffeTable`], names map
//! `m{k}@ssh_X` → `m{k}.ssh_X`. The fixed bilinear deconvolution is verified and dropped.
//! Weight-sharing copies (`…_ohem`, and repeated names such as the training prototxt's second
//! `m1@ssh_7x7`) are skipped **after checking they equal the original**; a copy that differs
//! means a broken snapshot and is an error.

use std::collections::HashMap;

use super::caffe_net::{parse_net, RawLayer};
use super::{sha256_hex, wire, Converted, NamedTensor};
use crate::{Error, Result};

/// One stored layer: `name.weight` with shape `weight` (OIHW) and `name.bias` with `[weight[0]]`.
#[derive(Debug, Clone, Copy)]
pub struct CaffeLayer<'a> {
    /// Export name (`m1.ssh_3x3`); the Caffe name has `@` for the first `.` (`m1@ssh_3x3`).
    pub name: &'a str,
    pub weight: [usize; 4],
}

/// What a caffemodel must contain.
#[derive(Debug, Clone, Copy)]
pub struct CaffeTable<'a> {
    pub layers: &'a [CaffeLayer<'a>],
    /// A fixed bilinear 4×4 depthwise deconvolution (Caffe name, channels) that is checked
    /// against [`bilinear_kernel`] and not stored.
    pub bilinear: Option<(&'a str, usize)>,
    /// The output's `model` metadata (`vgg16-imagenet`); `None` writes none.
    pub model: Option<&'a str>,
    /// Layers with blobs that are neither in `layers` nor convolutions (an ImageNet classifier's fc6–fc8) are
    /// skipped and listed in a note; otherwise such a layer is refused as not part of the model.
    pub skip_non_conv: bool,
}

const fn l(name: &'static str, weight: [usize; 4]) -> CaffeLayer<'static> {
    CaffeLayer { name, weight }
}

/// SSH-VGG16: 37 layers, 74 tensors, and the fixed `conv5_128_up` deconvolution.
pub const SSH_VGG16: CaffeTable<'static> = CaffeTable {
    layers: &SSH_VGG16_LAYERS,
    bilinear: Some(("conv5_128_up", 128)),
    model: None,
    skip_non_conv: false,
};

/// The 37 stored layers of SSH-VGG16 (spec §7) with their OIHW weight shapes.
#[rustfmt::skip]
pub const SSH_VGG16_LAYERS: [CaffeLayer<'static>; 37] = [
    l("conv1_1", [64, 3, 3, 3]), l("conv1_2", [64, 64, 3, 3]),
    l("conv2_1", [128, 64, 3, 3]), l("conv2_2", [128, 128, 3, 3]),
    l("conv3_1", [256, 128, 3, 3]), l("conv3_2", [256, 256, 3, 3]), l("conv3_3", [256, 256, 3, 3]),
    l("conv4_1", [512, 256, 3, 3]), l("conv4_2", [512, 512, 3, 3]), l("conv4_3", [512, 512, 3, 3]),
    l("conv5_1", [512, 512, 3, 3]), l("conv5_2", [512, 512, 3, 3]), l("conv5_3", [512, 512, 3, 3]),
    l("conv4_128", [128, 512, 1, 1]), l("conv5_128", [128, 512, 1, 1]),
    l("conv4_fuse_final", [128, 128, 3, 3]),
    l("m1.ssh_3x3", [128, 128, 3, 3]), l("m1.ssh_dimred", [64, 128, 3, 3]),
    l("m1.ssh_5x5", [64, 64, 3, 3]), l("m1.ssh_7x7-1", [64, 64, 3, 3]), l("m1.ssh_7x7", [64, 64, 3, 3]),
    l("m1.ssh_cls_score", [4, 256, 1, 1]), l("m1.ssh_bbox_pred", [8, 256, 1, 1]),
    l("m2.ssh_3x3", [256, 512, 3, 3]), l("m2.ssh_dimred", [128, 512, 3, 3]),
    l("m2.ssh_5x5", [128, 128, 3, 3]), l("m2.ssh_7x7-1", [128, 128, 3, 3]), l("m2.ssh_7x7", [128, 128, 3, 3]),
    l("m2.ssh_cls_score", [4, 512, 1, 1]), l("m2.ssh_bbox_pred", [8, 512, 1, 1]),
    l("m3.ssh_3x3", [256, 512, 3, 3]), l("m3.ssh_dimred", [128, 512, 3, 3]),
    l("m3.ssh_5x5", [128, 128, 3, 3]), l("m3.ssh_7x7-1", [128, 128, 3, 3]), l("m3.ssh_7x7", [128, 128, 3, 3]),
    l("m3.ssh_cls_score", [4, 512, 1, 1]), l("m3.ssh_bbox_pred", [8, 512, 1, 1]),
];

/// Caffe's bilinear filler for a k×k kernel (row-major): `w[i] = 1 − |i/f − c|` with `f = ceil(k/2)`,
/// c = (2f − 1 − f mod 2)/(2f); the kernel is the outer product. k = 4 gives taps
/// [0.25, 0.75, 0.75, 0.25].
pub fn bilinear_kernel(k: usize) -> Vec<f32> {
    let f = k.div_ceil(2) as f32;
    let c = (2.0 * f - 1.0 - (f as usize % 2) as f32) / (2.0 * f);
    let tap = |i: usize| 1.0 - (i as f32 / f - c).abs();
    (0..k * k).map(|i| tap(i / k) * tap(i % k)).collect()
}

/// Caffe layer name → export name: `m{k}@ssh_X` → `m{k}.ssh_X`.
pub fn export_name(caffe: &str) -> String {
    caffe.replacen('@', ".", 1)
}

/// Export name → Caffe layer name: `m{k}.ssh_X` → `m{k}@ssh_X`.
pub fn caffe_name(export: &str) -> String {
    export.replacen('.', "@", 1)
}

/// The first layers of [`SSH_VGG16_LAYERS`]: VGG-16's convolutions conv1_1 … conv5_3.
const VGG16_CONVS: usize = 13;

/// The ImageNet VGG-16 (`VGG_ILSVRC_16_layers.caffemodel`): its 13 convolutions, the backbone `sshface train
/// --init` starts from. Its classifier (fc6, fc7, fc8) has no place in SSH and is skipped.
pub const VGG16_IMAGENET: CaffeTable<'static> = CaffeTable {
    layers: SSH_VGG16_LAYERS.split_at(VGG16_CONVS).0,
    bilinear: None,
    model: Some("vgg16-imagenet"),
    skip_non_conv: true,
};

/// Name prefixes of the layers SSH adds to VGG-16 (fusion, upsampler, modules and heads, and their ReLUs): a file
/// with any of them is an SSH model, whatever else it lacks.
const SSH_OWN: [&str; 6] = ["conv4_128", "conv5_128", "conv4_fuse", "m1@", "m2@", "m3@"];

/// Converts a caffemodel: SSH-VGG16 with [`SSH_VGG16`], or, when the file has VGG-16's convolutions and none of
/// SSH's own layers, an ImageNet VGG-16 with [`VGG16_IMAGENET`] (for `sshface train --init`).
///
/// # Errors
/// Those of [`convert_caffe_with`]; for a file read as an ImageNet VGG-16 the message says so, since the fix (a
/// missing SSH layer or a broken VGG) depends on which model the file was meant to be.
pub fn convert_caffe(bytes: &[u8], source_name: &str) -> Result<Converted> {
    let layers = parse_net(bytes).map_err(wire(source_name))?;
    if !is_imagenet_vgg16(&layers) {
        return convert_caffe_with_layers(&layers, bytes, source_name, &SSH_VGG16);
    }
    let (mut c, skipped) =
        convert_layers(&layers, bytes, source_name, &VGG16_IMAGENET).map_err(read_as_vgg16)?;
    let ignored = if skipped.is_empty() {
        "no other layer has weights".to_string()
    } else {
        format!("{} ignored", skipped.join(", "))
    };
    c.notes.insert(
        0,
        format!(
            "ImageNet VGG-16: exported conv1_1 … conv5_3 ({} tensors) for `sshface train --init`; {ignored}",
            c.tensors.len()
        ),
    );
    Ok(c)
}

/// Adds to a conversion error of a file read as an ImageNet VGG-16 why it was read so.
fn read_as_vgg16(e: Error) -> Error {
    match e {
        Error::Convert { file, msg } => Error::Convert {
            file,
            msg: format!(
                "{msg}; the file was read as an ImageNet VGG-16: it has VGG-16 convolutions and no SSH layer ({})",
                SSH_OWN.map(|p| format!("{p}…")).join(", ")
            ),
        },
        e => e,
    }
}

/// Whether `layers` are an ImageNet VGG-16: at least one of its convolutions holds weights and no layer is one of
/// SSH's own ([`SSH_OWN`]). Anything else is read as SSH, whose messages name each missing layer.
fn is_imagenet_vgg16(layers: &[RawLayer]) -> bool {
    let vgg = &SSH_VGG16_LAYERS[..VGG16_CONVS];
    !layers
        .iter()
        .any(|l| SSH_OWN.iter().any(|p| l.name.starts_with(p)))
        && layers
            .iter()
            .any(|l| !l.blobs.is_empty() && vgg.iter().any(|v| v.name == l.name))
}

/// Converts a caffemodel with any table (tests use small shapes).
///
/// # Errors
/// [`Error::Convert`] naming `source_name` and, for a malformed file, the byte offset; for a bad layer its name,
/// stored shape and the expected one; for a missing layer its Caffe and export names and expected shapes.
pub fn convert_caffe_with(
    bytes: &[u8],
    source_name: &str,
    table: &CaffeTable,
) -> Result<Converted> {
    let layers = parse_net(bytes).map_err(wire(source_name))?;
    convert_caffe_with_layers(&layers, bytes, source_name, table)
}

/// [`convert_layers`] with the layers it skipped named in a note.
fn convert_caffe_with_layers(
    layers: &[RawLayer],
    bytes: &[u8],
    source_name: &str,
    table: &CaffeTable,
) -> Result<Converted> {
    let (mut c, skipped) = convert_layers(layers, bytes, source_name, table)?;
    if !skipped.is_empty() {
        c.notes
            .push(format!("{}: not convolutions, skipped", skipped.join(", ")));
    }
    Ok(c)
}

/// The tensors of `table` from `layers` (of the file `bytes`), and the names of the layers with blobs that
/// [`CaffeTable::skip_non_conv`] skipped.
fn convert_layers<'a>(
    layers: &[RawLayer<'a>],
    bytes: &[u8],
    source_name: &str,
    table: &CaffeTable,
) -> Result<(Converted, Vec<&'a str>)> {
    let err = |msg: String| Error::Convert {
        file: source_name.to_string(),
        msg,
    };
    let expected: HashMap<&str, &CaffeLayer> = table.layers.iter().map(|l| (l.name, l)).collect();
    let mut kept: HashMap<String, &RawLayer> = HashMap::new();
    let mut copies: Vec<(&RawLayer, String)> = Vec::new();
    let mut skipped = Vec::new();
    let mut notes = Vec::new();
    for layer in layers.iter().filter(|l| !l.blobs.is_empty()) {
        if let Some((name, ch)) = table.bilinear.filter(|(n, _)| *n == layer.name) {
            check_bilinear(layer, ch).map_err(|m| err(format!("layer {name}: {m}")))?;
            notes.push(format!(
                "{name}: fixed bilinear kernel verified, not stored"
            ));
            continue;
        }
        let base = layer.name.strip_suffix("_ohem").unwrap_or(layer.name);
        let export = export_name(base);
        let Some(want) = expected.get(export.as_str()) else {
            if table.skip_non_conv && !layer.is_convolution() {
                skipped.push(layer.name);
                continue;
            }
            return Err(err(format!(
                "layer {} ({}) has {} blob(s) but is not part of the model",
                layer.name,
                layer.kind,
                layer.blobs.len()
            )));
        };
        check_blobs(layer, want).map_err(err)?;
        if base != layer.name || kept.contains_key(&export) {
            copies.push((layer, export));
        } else {
            kept.insert(export, layer);
        }
    }
    let mut tensors: Vec<NamedTensor> = Vec::with_capacity(2 * table.layers.len());
    for want in table.layers {
        let Some(layer) = kept.get(want.name) else {
            return Err(err(format!(
                "missing layer {} (tensors {}.weight/.bias; expected weight shape {:?}, bias [{}])",
                caffe_name(want.name),
                want.name,
                want.weight,
                want.weight[0]
            )));
        };
        tensors.push((
            format!("{}.weight", want.name),
            want.weight.to_vec(),
            layer.blobs[0].data.clone(),
        ));
        tensors.push((
            format!("{}.bias", want.name),
            vec![want.weight[0]],
            layer.blobs[1].data.clone(),
        ));
    }
    for (copy, export) in &copies {
        let orig = kept[export.as_str()];
        if orig
            .blobs
            .iter()
            .zip(&copy.blobs)
            .any(|(a, b)| a.data != b.data)
        {
            return Err(err(format!(
                "layer {} shares weights with {} but its values differ",
                copy.name, orig.name
            )));
        }
        notes.push(format!(
            "{}: weight-sharing copy of {}, equal, skipped",
            copy.name, orig.name
        ));
    }
    let mut metadata = HashMap::from([
        (
            "format".to_string(),
            "float32; conv weight OIHW (Caffe blob 0); bias [O] (blob 1)".to_string(),
        ),
        ("source".to_string(), source_name.to_string()),
        ("sha256".to_string(), sha256_hex(bytes)),
    ]);
    if let Some(model) = table.model {
        metadata.insert("model".to_string(), model.to_string());
    }
    let converted = Converted {
        tensors,
        metadata,
        notes,
    }
    .finite(source_name)?;
    Ok((converted, skipped))
}

fn check_blobs(layer: &RawLayer, want: &CaffeLayer) -> std::result::Result<(), String> {
    let bias = want.weight[0];
    if layer.blobs.len() != 2 {
        return Err(format!(
            "layer {}: {} blob(s), expected 2 (weight {:?}, bias [{bias}])",
            layer.name,
            layer.blobs.len(),
            want.weight
        ));
    }
    for (i, want_shape) in [want.weight.to_vec(), vec![bias]].iter().enumerate() {
        let b = &layer.blobs[i];
        let n: usize = want_shape.iter().product();
        if b.data.len() != n {
            return Err(format!(
                "layer {}: blob {i} has {} values (stored shape {:?}), expected shape {want_shape:?} ({n} values)",
                layer.name,
                b.data.len(),
                b.shape
            ));
        }
        // Legacy blobs are 4-D, left-padded with 1s (a bias reads (1, 1, 1, O)), so leading 1s are not compared.
        // Dims that do not describe the values (absent, so read as 1) were never checked: only the count is.
        // Dims that do must match, or a weight of the right size but transposed layout would pass.
        let core = |s: &[usize]| s[s.iter().take_while(|&&d| d == 1).count()..].to_vec();
        let described = b.shape.iter().try_fold(1usize, |p, &d| p.checked_mul(d)) == Some(n);
        if described && core(&b.shape) != core(want_shape) {
            return Err(format!(
                "layer {}: blob {i} has shape {:?}, expected shape {want_shape:?} (same {n} values, other layout)",
                layer.name, b.shape
            ));
        }
    }
    Ok(())
}

fn check_bilinear(layer: &RawLayer, ch: usize) -> std::result::Result<(), String> {
    let k = bilinear_kernel(4);
    let expect = format!("expected one blob of shape [{ch}, 1, 4, 4] holding the bilinear kernel");
    let [blob] = layer.blobs.as_slice() else {
        return Err(format!("{} blobs, {expect}", layer.blobs.len()));
    };
    if blob.data.len() != ch * 16 {
        return Err(format!(
            "blob has {} values (stored shape {:?}), {expect}",
            blob.data.len(),
            blob.shape
        ));
    }
    for (i, (&got, &want)) in blob.data.iter().zip(k.iter().cycle()).enumerate() {
        if (got - want).abs() > 1e-6 {
            return Err(format!(
                "value {got} at channel {}, tap ({}, {}) differs from the bilinear kernel's {want} ({expect}; a trained upsampler is not supported)",
                i / 16,
                (i % 16) / 4,
                i % 4
            ));
        }
    }
    Ok(())
}
