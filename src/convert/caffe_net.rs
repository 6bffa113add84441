//! The layers of a Caffe `.caffemodel` (binary NetParameter) as the converter needs them: name, type and blobs.
//!
//! Reads both layer lists Caffe has written: the current `layer` (field 100, LayerParameter: name 1, type 2 as a
//! string, blobs 7) and the legacy V1 `layers` (field 2, V1LayerParameter: name 4, type 5 as an enum, blobs 6), in
//! which models released before 2015 are stored, e.g. the ImageNet VGG_ILSVRC_16_layers.caffemodel. Blobs carry
//! their dims either in a BlobShape (field 7) or in the legacy num/channels/height/width fields 1–4, and their
//! values as floats (5) or doubles (8).

use super::protobuf::{Field, Reader, WireResult};

/// One blob: its stored dims and its values.
pub(crate) struct Blob {
    /// The BlobShape dims, or the legacy 4-D (num, channels, height, width) with absent ones read as 1.
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// One layer as stored: no blobs for layers without parameters (ReLU, pooling, data).
pub(crate) struct RawLayer<'a> {
    pub name: &'a str,
    /// The type string (`Convolution`), or for a V1 layer the name of its enum value (see [`v1_type`]).
    pub kind: String,
    pub blobs: Vec<Blob>,
}

impl RawLayer<'_> {
    /// Whether the layer is a convolution (its weights are what the converter exports).
    pub fn is_convolution(&self) -> bool {
        self.kind == "Convolution"
    }
}

/// The type name of a V1LayerParameter.LayerType value: the layers that carry weights get the current (V2) names,
/// so messages and checks read the same for both formats; any other value is named by its number.
fn v1_type(v: u64) -> String {
    match v {
        4 => "Convolution".to_string(),
        14 => "InnerProduct".to_string(),
        39 => "Deconvolution".to_string(),
        _ => format!("V1 type {v}"),
    }
}

/// The layers of a NetParameter in file order; fields other than the two layer lists are skipped.
pub(crate) fn parse_net(bytes: &[u8]) -> WireResult<Vec<RawLayer<'_>>> {
    let mut layers = Vec::new();
    for f in Reader::new(bytes) {
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
                    v1_type(lf.varint()?)
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
