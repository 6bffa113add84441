//! Caffe `.caffemodel` (binary NetParameter) → safetensors, for SSH-VGG16 (ssh-vgg16 spec §7–8).
//!
//! Reads current (`layer`, 100) and legacy V1 (`layers`, 2) layer lists. Blob 0 is the OIHW
//! weight, blob 1 the bias; element counts are checked against a [`CaffeTable`], names map
//! `m{k}@ssh_X` → `m{k}.ssh_X`. The fixed bilinear deconvolution is verified and dropped.
//! Weight-sharing copies (`…_ohem`, and repeated names such as the training prototxt's second
//! `m1@ssh_7x7`) are skipped **after checking they equal the original**; a copy that differs
//! means a broken snapshot and is an error.

use std::collections::HashMap;

use super::protobuf::{Field, WireResult};
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
}

const fn l(name: &'static str, weight: [usize; 4]) -> CaffeLayer<'static> {
    CaffeLayer { name, weight }
}

/// SSH-VGG16: 37 layers, 74 tensors, and the fixed `conv5_128_up` deconvolution.
pub const SSH_VGG16: CaffeTable<'static> = CaffeTable {
    layers: &SSH_VGG16_LAYERS,
    bilinear: Some(("conv5_128_up", 128)),
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

/// Converts an SSH-VGG16 caffemodel with [`SSH_VGG16`].
pub fn convert_caffe(bytes: &[u8], source_name: &str) -> Result<Converted> {
    convert_caffe_with(bytes, source_name, &SSH_VGG16)
}

struct Blob {
    shape: Vec<usize>,
    data: Vec<f32>,
}

struct RawLayer<'a> {
    name: &'a str,
    kind: String,
    blobs: Vec<Blob>,
}

/// Converts a caffemodel with any table (tests use small shapes).
pub fn convert_caffe_with(
    bytes: &[u8],
    source_name: &str,
    table: &CaffeTable,
) -> Result<Converted> {
    let err = |msg: String| Error::Convert {
        file: source_name.to_string(),
        msg,
    };
    let layers = parse_net(bytes).map_err(wire(source_name))?;
    let expected: HashMap<&str, &CaffeLayer> = table.layers.iter().map(|l| (l.name, l)).collect();
    let mut kept: HashMap<String, &RawLayer> = HashMap::new();
    let mut copies: Vec<(&RawLayer, String)> = Vec::new();
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
    let metadata = HashMap::from([
        (
            "format".to_string(),
            "float32; conv weight OIHW (Caffe blob 0); bias [O] (blob 1)".to_string(),
        ),
        ("source".to_string(), source_name.to_string()),
        ("sha256".to_string(), sha256_hex(bytes)),
    ]);
    Converted {
        tensors,
        metadata,
        notes,
    }
    .finite(source_name)
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
    // Legacy blobs store 4-D dims that need not match (a bias reads (1, 1, 1, O)): compare counts.
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

fn parse_net(bytes: &[u8]) -> WireResult<Vec<RawLayer<'_>>> {
    let mut layers = Vec::new();
    for f in super::protobuf::Reader::new(bytes) {
        let f = f?;
        // (name, type, blobs) field numbers of LayerParameter and legacy V1LayerParameter.
        let (name_f, type_f, blobs_f) = match f.number {
            100 => (1, 2, 7),
            2 => (4, 5, 6),
            _ => continue,
        };
        let mut layer = RawLayer {
            name: "",
            kind: String::new(),
            blobs: Vec::new(),
        };
        for lf in f.message()? {
            let lf = lf?;
            if lf.number == name_f {
                layer.name = lf.str()?;
            } else if lf.number == type_f {
                layer.kind = if f.number == 2 {
                    format!("V1 type {}", lf.varint()?)
                } else {
                    lf.str()?.to_string()
                };
            } else if lf.number == blobs_f {
                layer.blobs.push(parse_blob(lf)?);
            }
        }
        layers.push(layer);
    }
    Ok(layers)
}

fn parse_blob(f: Field) -> WireResult<Blob> {
    let (mut dims, mut legacy) = (Vec::new(), [None; 4]);
    let (mut data, mut doubles) = (Vec::new(), Vec::new());
    for bf in f.message()? {
        let bf = bf?;
        match bf.number {
            1..=4 => legacy[bf.number as usize - 1] = Some(bf.varint()? as usize),
            5 => bf.push_f32s(&mut data)?,
            7 => {
                for sf in bf.message()? {
                    let sf = sf?;
                    if sf.number == 1 {
                        sf.push_varints(&mut dims)?;
                    }
                }
            }
            8 => bf.push_f64s(&mut doubles)?,
            _ => {} // diff, double_diff
        }
    }
    let shape = if dims.is_empty() {
        legacy.iter().map(|d| d.unwrap_or(1)).collect()
    } else {
        dims.iter().map(|&d| d as usize).collect()
    };
    if data.is_empty() {
        data = doubles.iter().map(|&d| d as f32).collect();
    }
    Ok(Blob { shape, data })
}
