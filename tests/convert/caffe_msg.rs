//! Writers of synthetic caffemodels for the Caffe converter tests: blobs in every encoding Caffe has used, and
//! layers in the current and legacy V1 forms, typed by name the way real files are.

use sshface::convert::protobuf::write::Msg;

/// How a blob is encoded.
#[derive(Clone, Copy)]
pub(crate) enum B {
    /// BlobShape with packed dims, packed float data.
    Packed,
    /// BlobShape with unpacked dims, unpacked fixed32 data.
    Unpacked,
    /// Legacy num/channels/height/width, packed data.
    Legacy,
    /// BlobShape, packed double_data only.
    Double,
}

/// A BlobProto of `data` with dims `shape`, encoded as `enc`, plus a `diff` the converter must ignore.
pub(crate) fn blob(enc: B, shape: &[usize], data: &[f32]) -> Msg {
    let mut b = Msg::new();
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut sh = Msg::new();
    match enc {
        B::Packed | B::Double => {
            sh.packed_varints(1, &dims);
        }
        B::Unpacked => {
            for &d in &dims {
                sh.varint(1, d);
            }
        }
        B::Legacy => {
            // Legacy blobs are 4-D, left-padded with 1s (a bias reads (1, 1, 1, O)).
            let mut d4 = vec![1u64; 4 - dims.len()];
            d4.extend(&dims);
            for (i, d) in d4.iter().enumerate() {
                b.varint(i as u32 + 1, *d);
            }
        }
    }
    if !matches!(enc, B::Legacy) {
        b.message(7, &sh);
    }
    match enc {
        B::Unpacked => {
            for &v in data {
                b.f32(5, v);
            }
        }
        B::Double => {
            b.packed_f64(8, &data.iter().map(|&v| v as f64).collect::<Vec<_>>());
        }
        _ => {
            b.packed_f32(5, data);
        }
    }
    b.packed_f32(6, &[9.0; 2]); // diff: ignored
    b
}

/// The type a layer name stands for in these files: (type string, V1LayerParameter.LayerType value).
fn kind(name: &str) -> (&'static str, u64) {
    if name.ends_with("_up") {
        ("Deconvolution", 39)
    } else if name.starts_with("fc") {
        ("InnerProduct", 14)
    } else {
        ("Convolution", 4)
    }
}

/// A layer in the current form (NetParameter.layer = 100) or legacy V1 form (layers = 2).
pub(crate) fn layer(net: &mut Msg, legacy: bool, name: &str, blobs: &[Msg]) {
    let mut l = Msg::new();
    let (type_name, v1_type) = kind(name);
    if legacy {
        l.string(4, name).varint(5, v1_type);
        for b in blobs {
            l.message(6, b);
        }
        net.message(2, &l);
    } else {
        l.string(1, name).string(2, type_name);
        for b in blobs {
            l.message(7, b);
        }
        net.message(100, &l);
    }
}

/// A layer `name` of zeros: a weight blob of dims `weight` and a bias of `bias` values (the encoding of each form's
/// Caffe: BlobShape in the current form, legacy dims in V1), for files that are wrong in their shapes.
pub(crate) fn zeros_layer(net: &mut Msg, legacy: bool, name: &str, weight: &[usize], bias: usize) {
    let enc = if legacy { B::Legacy } else { B::Packed };
    let zeros = vec![0.0; weight.iter().product::<usize>().max(bias)];
    let w = blob(enc, weight, &zeros[..weight.iter().product()]);
    layer(net, legacy, name, &[w, blob(enc, &[bias], &zeros[..bias])]);
}
