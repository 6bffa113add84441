//! What the fuzz targets share: the small model tables the converters are driven with (the real ones need tensors of
//! megabytes, which a fuzzer never builds) and the no-op GPU context the weight loader uploads to.

use std::sync::{Arc, OnceLock};

use sshface::convert::caffe::{CaffeLayer, CaffeTable};
use sshface::convert::tf_graph::{Fold, TfLayer, TfTable};
use sshface::{AdapterOptions, GpuContext};

/// A TF table with each kind of layer: a BN-folded conv, a BN-folded depthwise conv, a BiasAdd head.
pub const TF_TABLE: TfTable<'static> = TfTable {
    prefix: "M/",
    layers: &[
        TfLayer {
            name: "a.conv",
            tf_op: "c1/Conv2D",
            shape: [2, 1, 1, 2],
            fold: Fold::BatchNorm,
        },
        TfLayer {
            name: "a.dw",
            tf_op: "dw/depthwise",
            shape: [2, 1, 1, 1],
            fold: Fold::BatchNorm,
        },
        TfLayer {
            name: "head",
            tf_op: "h/Conv2D",
            shape: [1, 2, 1, 1],
            fold: Fold::BiasAdd,
        },
    ],
};

/// A Caffe table with two layers (one `m1@` name) and a 1-channel bilinear upsampler.
pub const CAFFE_TABLE: CaffeTable<'static> = CaffeTable {
    layers: &[
        CaffeLayer {
            name: "conv1_1",
            weight: [2, 1, 1, 1],
        },
        CaffeLayer {
            name: "m1.ssh_3x3",
            weight: [1, 2, 1, 1],
        },
    ],
    bilinear: Some(("up", 1)),
};

/// wgpu's no-op device, made once per process.
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
