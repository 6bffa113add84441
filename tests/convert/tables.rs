//! The small model tables of the converter tests (tiny shapes a test writes by hand), shared with the fuzz targets
//! (`fuzz/src/checks.rs`), whose fuzzers can satisfy them where the real tables need megabytes of tensors.

use sshface::convert::caffe::{CaffeLayer, CaffeTable};
use sshface::convert::tf_graph::{Fold, TfLayer, TfTable};

/// The layers of `tf_synth.rs`'s graph: a BN-folded conv and depthwise conv, a BiasAdd head.
pub const TF_LAYERS: [TfLayer<'static>; 3] = [
    TfLayer {
        name: "a.conv",
        tf_op: "c1/Conv2D",
        shape: [5, 4, 3, 2],
        fold: Fold::BatchNorm,
    },
    TfLayer {
        name: "a.dw",
        tf_op: "dw/depthwise",
        shape: [5, 1, 3, 3],
        fold: Fold::BatchNorm,
    },
    TfLayer {
        name: "head",
        tf_op: "h/Conv2D",
        shape: [4, 5, 1, 1],
        fold: Fold::BiasAdd,
    },
];
pub const TF_TABLE: TfTable<'static> = TfTable {
    prefix: "M/",
    layers: &TF_LAYERS,
};

/// Two layers (one `m1@` name), a head, and a 3-channel bilinear upsampler.
pub const CAFFE_LAYERS: [CaffeLayer<'static>; 3] = [
    CaffeLayer {
        name: "conv1_1",
        weight: [4, 3, 3, 3],
    },
    CaffeLayer {
        name: "m1.ssh_3x3",
        weight: [2, 4, 3, 3],
    },
    CaffeLayer {
        name: "m1.ssh_cls_score",
        weight: [4, 2, 1, 1],
    },
];
pub const CAFFE_TABLE: CaffeTable<'static> = CaffeTable {
    layers: &CAFFE_LAYERS,
    bilinear: Some(("conv5_128_up", 3)),
    model: None,
    skip_non_conv: false,
};
