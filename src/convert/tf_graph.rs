//! TensorFlow frozen GraphDef → BN-folded safetensors (retinaface-mnv2 spec §5, §10).
//!
//! The mapping is driven by a name table ([`TfTable`]: export name ↔ TF conv op) and the graph
//! structure: each conv's weight is the Const reached from input 1 through `Identity` nodes,
//! and its single consumer decides the bias: `FusedBatchNorm*` is folded in f64 (bit-identical
//! to the reference file), `BiasAdd` gives the bias unchanged.

use std::collections::HashMap;

use super::graph_def::Graph;
use super::{sha256_hex, wire, Converted};
use crate::{Error, Result};

/// How a conv's bias is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Consumer is `FusedBatchNormV3` (or V1/V2): fold γ, β, μ, σ², ε into weight and bias.
    BatchNorm,
    /// Consumer is `BiasAdd`: its constant is the bias.
    BiasAdd,
}

/// One exported layer: `name.weight` (OIHW, depthwise `[C, 1, kh, kw]`) and `name.bias` (`[O]`).
#[derive(Debug, Clone, Copy)]
pub struct TfLayer<'a> {
    pub name: &'a str,
    /// TF op name without the table prefix (`Conv2D` or `DepthwiseConv2dNative` node).
    pub tf_op: &'a str,
    /// Expected export weight shape.
    pub shape: [usize; 4],
    pub fold: Fold,
}

/// A model's name table. Every conv node of the graph under `prefix` must be listed.
#[derive(Debug, Clone, Copy)]
pub struct TfTable<'a> {
    pub prefix: &'a str,
    pub layers: &'a [TfLayer<'a>],
}

const fn bn(name: &'static str, tf_op: &'static str, shape: [usize; 4]) -> TfLayer<'static> {
    TfLayer {
        name,
        tf_op,
        shape,
        fold: Fold::BatchNorm,
    }
}

const fn bias(name: &'static str, tf_op: &'static str, shape: [usize; 4]) -> TfLayer<'static> {
    TfLayer {
        name,
        tf_op,
        shape,
        fold: Fold::BiasAdd,
    }
}

/// RetinaFace-MobileNetV2 (the `retinaface==1.1.1` wheel's `frozen_graph.pb`).
pub const RETINAFACE_MNV2: TfTable<'static> = TfTable {
    prefix: "RetinaFaceModel/",
    layers: &RETINAFACE_MNV2_LAYERS,
};

/// The 77 layers of `spec/retinaface-mnv2-graph.json`, in graph order (generated from it).
#[rustfmt::skip]
pub const RETINAFACE_MNV2_LAYERS: [TfLayer<'static>; 77] = [
    bn("backbone.conv1", "MobileNetV2_extrator/Conv1/Conv2D", [32, 3, 3, 3]),
    bn("backbone.block0.dw", "MobileNetV2_extrator/expanded_conv_depthwise/depthwise", [32, 1, 3, 3]),
    bn("backbone.block0.project", "MobileNetV2_extrator/expanded_conv_project/Conv2D", [16, 32, 1, 1]),
    bn("backbone.block1.expand", "MobileNetV2_extrator/block_1_expand/Conv2D", [96, 16, 1, 1]),
    bn("backbone.block1.dw", "MobileNetV2_extrator/block_1_depthwise/depthwise", [96, 1, 3, 3]),
    bn("backbone.block1.project", "MobileNetV2_extrator/block_1_project/Conv2D", [24, 96, 1, 1]),
    bn("backbone.block2.expand", "MobileNetV2_extrator/block_2_expand/Conv2D", [144, 24, 1, 1]),
    bn("backbone.block2.dw", "MobileNetV2_extrator/block_2_depthwise/depthwise", [144, 1, 3, 3]),
    bn("backbone.block2.project", "MobileNetV2_extrator/block_2_project/Conv2D", [24, 144, 1, 1]),
    bn("backbone.block3.expand", "MobileNetV2_extrator/block_3_expand/Conv2D", [144, 24, 1, 1]),
    bn("backbone.block3.dw", "MobileNetV2_extrator/block_3_depthwise/depthwise", [144, 1, 3, 3]),
    bn("backbone.block3.project", "MobileNetV2_extrator/block_3_project/Conv2D", [32, 144, 1, 1]),
    bn("backbone.block4.expand", "MobileNetV2_extrator/block_4_expand/Conv2D", [192, 32, 1, 1]),
    bn("backbone.block4.dw", "MobileNetV2_extrator/block_4_depthwise/depthwise", [192, 1, 3, 3]),
    bn("backbone.block4.project", "MobileNetV2_extrator/block_4_project/Conv2D", [32, 192, 1, 1]),
    bn("backbone.block5.expand", "MobileNetV2_extrator/block_5_expand/Conv2D", [192, 32, 1, 1]),
    bn("backbone.block5.dw", "MobileNetV2_extrator/block_5_depthwise/depthwise", [192, 1, 3, 3]),
    bn("backbone.block5.project", "MobileNetV2_extrator/block_5_project/Conv2D", [32, 192, 1, 1]),
    bn("backbone.block6.expand", "MobileNetV2_extrator/block_6_expand/Conv2D", [192, 32, 1, 1]),
    bn("backbone.block6.dw", "MobileNetV2_extrator/block_6_depthwise/depthwise", [192, 1, 3, 3]),
    bn("backbone.block6.project", "MobileNetV2_extrator/block_6_project/Conv2D", [64, 192, 1, 1]),
    bn("backbone.block7.expand", "MobileNetV2_extrator/block_7_expand/Conv2D", [384, 64, 1, 1]),
    bn("backbone.block7.dw", "MobileNetV2_extrator/block_7_depthwise/depthwise", [384, 1, 3, 3]),
    bn("backbone.block7.project", "MobileNetV2_extrator/block_7_project/Conv2D", [64, 384, 1, 1]),
    bn("backbone.block8.expand", "MobileNetV2_extrator/block_8_expand/Conv2D", [384, 64, 1, 1]),
    bn("backbone.block8.dw", "MobileNetV2_extrator/block_8_depthwise/depthwise", [384, 1, 3, 3]),
    bn("backbone.block8.project", "MobileNetV2_extrator/block_8_project/Conv2D", [64, 384, 1, 1]),
    bn("backbone.block9.expand", "MobileNetV2_extrator/block_9_expand/Conv2D", [384, 64, 1, 1]),
    bn("backbone.block9.dw", "MobileNetV2_extrator/block_9_depthwise/depthwise", [384, 1, 3, 3]),
    bn("backbone.block9.project", "MobileNetV2_extrator/block_9_project/Conv2D", [64, 384, 1, 1]),
    bn("backbone.block10.expand", "MobileNetV2_extrator/block_10_expand/Conv2D", [384, 64, 1, 1]),
    bn("backbone.block10.dw", "MobileNetV2_extrator/block_10_depthwise/depthwise", [384, 1, 3, 3]),
    bn("backbone.block10.project", "MobileNetV2_extrator/block_10_project/Conv2D", [96, 384, 1, 1]),
    bn("backbone.block11.expand", "MobileNetV2_extrator/block_11_expand/Conv2D", [576, 96, 1, 1]),
    bn("backbone.block11.dw", "MobileNetV2_extrator/block_11_depthwise/depthwise", [576, 1, 3, 3]),
    bn("backbone.block11.project", "MobileNetV2_extrator/block_11_project/Conv2D", [96, 576, 1, 1]),
    bn("backbone.block12.expand", "MobileNetV2_extrator/block_12_expand/Conv2D", [576, 96, 1, 1]),
    bn("backbone.block12.dw", "MobileNetV2_extrator/block_12_depthwise/depthwise", [576, 1, 3, 3]),
    bn("backbone.block12.project", "MobileNetV2_extrator/block_12_project/Conv2D", [96, 576, 1, 1]),
    bn("backbone.block13.expand", "MobileNetV2_extrator/block_13_expand/Conv2D", [576, 96, 1, 1]),
    bn("backbone.block13.dw", "MobileNetV2_extrator/block_13_depthwise/depthwise", [576, 1, 3, 3]),
    bn("backbone.block13.project", "MobileNetV2_extrator/block_13_project/Conv2D", [160, 576, 1, 1]),
    bn("backbone.block14.expand", "MobileNetV2_extrator/block_14_expand/Conv2D", [960, 160, 1, 1]),
    bn("backbone.block14.dw", "MobileNetV2_extrator/block_14_depthwise/depthwise", [960, 1, 3, 3]),
    bn("backbone.block14.project", "MobileNetV2_extrator/block_14_project/Conv2D", [160, 960, 1, 1]),
    bn("backbone.block15.expand", "MobileNetV2_extrator/block_15_expand/Conv2D", [960, 160, 1, 1]),
    bn("backbone.block15.dw", "MobileNetV2_extrator/block_15_depthwise/depthwise", [960, 1, 3, 3]),
    bn("backbone.block15.project", "MobileNetV2_extrator/block_15_project/Conv2D", [160, 960, 1, 1]),
    bn("fpn.lateral1", "FPN/ConvBN/conv/Conv2D", [64, 32, 1, 1]),
    bn("fpn.lateral2", "FPN/ConvBN_1/conv/Conv2D", [64, 96, 1, 1]),
    bn("fpn.lateral3", "FPN/ConvBN_2/conv/Conv2D", [64, 160, 1, 1]),
    bn("fpn.merge2", "FPN/ConvBN_3/conv/Conv2D", [64, 64, 3, 3]),
    bn("fpn.merge1", "FPN/ConvBN_4/conv/Conv2D", [64, 64, 3, 3]),
    bn("ssh0.conv3x3", "SSH_0/ConvBN/conv/Conv2D", [32, 64, 3, 3]),
    bn("ssh0.conv5x5_1", "SSH_0/ConvBN_1/conv/Conv2D", [16, 64, 3, 3]),
    bn("ssh0.conv5x5_2", "SSH_0/ConvBN_2/conv/Conv2D", [16, 16, 3, 3]),
    bn("ssh0.conv7x7_2", "SSH_0/ConvBN_3/conv/Conv2D", [16, 16, 3, 3]),
    bn("ssh0.conv7x7_3", "SSH_0/ConvBN_4/conv/Conv2D", [16, 16, 3, 3]),
    bn("ssh1.conv3x3", "SSH_1/ConvBN/conv/Conv2D", [32, 64, 3, 3]),
    bn("ssh1.conv5x5_1", "SSH_1/ConvBN_1/conv/Conv2D", [16, 64, 3, 3]),
    bn("ssh1.conv5x5_2", "SSH_1/ConvBN_2/conv/Conv2D", [16, 16, 3, 3]),
    bn("ssh1.conv7x7_2", "SSH_1/ConvBN_3/conv/Conv2D", [16, 16, 3, 3]),
    bn("ssh1.conv7x7_3", "SSH_1/ConvBN_4/conv/Conv2D", [16, 16, 3, 3]),
    bn("ssh2.conv3x3", "SSH_2/ConvBN/conv/Conv2D", [32, 64, 3, 3]),
    bn("ssh2.conv5x5_1", "SSH_2/ConvBN_1/conv/Conv2D", [16, 64, 3, 3]),
    bn("ssh2.conv5x5_2", "SSH_2/ConvBN_2/conv/Conv2D", [16, 16, 3, 3]),
    bn("ssh2.conv7x7_2", "SSH_2/ConvBN_3/conv/Conv2D", [16, 16, 3, 3]),
    bn("ssh2.conv7x7_3", "SSH_2/ConvBN_4/conv/Conv2D", [16, 16, 3, 3]),
    bias("head.bbox.0", "BboxHead_0/conv2d/Conv2D", [8, 64, 1, 1]),
    bias("head.bbox.1", "BboxHead_1/conv2d_1/Conv2D", [8, 64, 1, 1]),
    bias("head.bbox.2", "BboxHead_2/conv2d_2/Conv2D", [8, 64, 1, 1]),
    bias("head.class.0", "ClassHead_0/conv2d_6/Conv2D", [4, 64, 1, 1]),
    bias("head.class.1", "ClassHead_1/conv2d_7/Conv2D", [4, 64, 1, 1]),
    bias("head.class.2", "ClassHead_2/conv2d_8/Conv2D", [4, 64, 1, 1]),
    bias("head.landmark.0", "LandmarkHead_0/conv2d_3/Conv2D", [20, 64, 1, 1]),
    bias("head.landmark.1", "LandmarkHead_1/conv2d_4/Conv2D", [20, 64, 1, 1]),
    bias("head.landmark.2", "LandmarkHead_2/conv2d_5/Conv2D", [20, 64, 1, 1]),
];

/// Converts the RetinaFace-MobileNetV2 frozen graph with [`RETINAFACE_MNV2`].
pub fn convert_tf_graph(pb: &[u8], source_name: &str) -> Result<Converted> {
    convert_tf_graph_with(pb, source_name, &RETINAFACE_MNV2)
}

/// Converts a frozen GraphDef with any name table (tests use small synthetic ones).
pub fn convert_tf_graph_with(pb: &[u8], source_name: &str, table: &TfTable) -> Result<Converted> {
    let err = |msg: String| Error::Convert {
        file: source_name.to_string(),
        msg,
    };
    let g = Graph::parse(pb).map_err(wire(source_name))?;
    let mut wanted: HashMap<String, &TfLayer> = HashMap::new();
    for l in table.layers {
        wanted.insert(format!("{}{}", table.prefix, l.tf_op), l);
    }
    // An unlisted conv means the graph is not the model the table describes.
    for n in &g.nodes {
        if is_conv(n.op) && n.name.starts_with(table.prefix) && !wanted.contains_key(n.name) {
            return Err(err(format!(
                "conv node {} ({}) is not in the name table",
                n.name, n.op
            )));
        }
    }
    let mut tensors = Vec::with_capacity(2 * table.layers.len());
    for l in table.layers {
        let (w, b) = convert_layer(&g, table.prefix, l).map_err(err)?;
        tensors.push((format!("{}.weight", l.name), l.shape.to_vec(), w));
        tensors.push((format!("{}.bias", l.name), vec![l.shape[0]], b));
    }
    let bn_count = table
        .layers
        .iter()
        .filter(|l| l.fold == Fold::BatchNorm)
        .count();
    let metadata = HashMap::from([
        (
            "format".to_string(),
            "BN-folded float32; conv weight OIHW, depthwise [C,1,kh,kw]; bias [O]".to_string(),
        ),
        ("source".to_string(), source_name.to_string()),
        ("sha256".to_string(), sha256_hex(pb)),
        (
            "bn_fold".to_string(),
            "s=gamma/sqrt(var+eps); W'=W*s[o]; b'=beta-mean*s (float64 then float32)".to_string(),
        ),
    ]);
    let notes = vec![format!(
        "{} layers: {bn_count} with BatchNorm folded, {} with BiasAdd",
        table.layers.len(),
        table.layers.len() - bn_count
    )];
    Converted {
        tensors,
        metadata,
        notes,
    }
    .finite(source_name)
}

fn is_conv(op: &str) -> bool {
    op == "Conv2D" || op == "DepthwiseConv2dNative"
}

/// Returns the layer's (export weight, bias) or a message naming the layer and node.
fn convert_layer(
    g: &Graph,
    prefix: &str,
    l: &TfLayer,
) -> std::result::Result<(Vec<f32>, Vec<f32>), String> {
    let op_name = format!("{prefix}{}", l.tf_op);
    let conv = g
        .node(&op_name)
        .ok_or_else(|| format!("layer {}: graph has no node {op_name}", l.name))?;
    if !is_conv(conv.op) {
        return Err(format!(
            "layer {}: node {op_name} is {}, expected Conv2D or DepthwiseConv2dNative",
            l.name, conv.op
        ));
    }
    let (tf_shape, tf_w) = g.const_input(conv, 1, l.name)?;
    let (shape, mut w) = to_export_layout(conv.op == "DepthwiseConv2dNative", &tf_shape, &tf_w)
        .map_err(|m| format!("layer {}: weight of {op_name}: {m}", l.name))?;
    if shape != l.shape {
        return Err(format!(
            "layer {}: expected weight shape {:?}, found {shape:?} (TF {tf_shape:?})",
            l.name, l.shape
        ));
    }
    let o = shape[0];
    let consumer = g.consumer(conv, l.name)?;
    let param = |i: usize, what: &str| -> std::result::Result<Vec<f32>, String> {
        let (s, v) = g.const_input(consumer, i, l.name)?;
        if v.len() != o {
            return Err(format!(
                "layer {}: {what} of {} has shape {s:?}, expected [{o}]",
                l.name, consumer.name
            ));
        }
        Ok(v)
    };
    let found = if consumer.op == "BiasAdd" {
        Fold::BiasAdd
    } else {
        Fold::BatchNorm
    };
    if found != l.fold {
        return Err(format!(
            "layer {}: {op_name} feeds {} ({}), but the table expects {:?}",
            l.name, consumer.name, consumer.op, l.fold
        ));
    }
    if found == Fold::BiasAdd {
        return Ok((w, param(1, "bias")?));
    }
    let (gamma, beta) = (param(1, "gamma")?, param(2, "beta")?);
    let (mean, var) = (param(3, "moving mean")?, param(4, "moving variance")?);
    let eps = consumer
        .attr_f32("epsilon")
        .map_err(|e| format!("layer {}: {e}", l.name))?
        .ok_or_else(|| {
            format!(
                "layer {}: {} has no epsilon attribute",
                l.name, consumer.name
            )
        })?;
    if consumer
        .attr_bool("is_training")
        .map_err(|e| e.to_string())?
        == Some(true)
    {
        return Err(format!(
            "layer {}: {} has is_training = true",
            l.name, consumer.name
        ));
    }
    // f64 then one rounding to f32: reproduces the reference file bit for bit.
    let scale: Vec<f64> = (0..o)
        .map(|c| f64::from(gamma[c]) / (f64::from(var[c]) + f64::from(eps)).sqrt())
        .collect();
    let per_out = w.len() / o;
    for (c, row) in w.chunks_exact_mut(per_out).enumerate() {
        for v in row {
            *v = (f64::from(*v) * scale[c]) as f32;
        }
    }
    let b = (0..o)
        .map(|c| (f64::from(beta[c]) - f64::from(mean[c]) * scale[c]) as f32)
        .collect();
    Ok((w, b))
}

/// HWIO → OIHW; depthwise `[kh, kw, C, M]` → `[C·M, 1, kh, kw]` (output channel c·M + m, as TF).
fn to_export_layout(
    depthwise: bool,
    s: &[usize],
    w: &[f32],
) -> std::result::Result<([usize; 4], Vec<f32>), String> {
    let &[kh, kw, a, b] = s else {
        return Err(format!("expected a 4-D filter, found shape {s:?}"));
    };
    let mut out = vec![0f32; w.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..a {
                for j in 0..b {
                    let src = ((y * kw + x) * a + i) * b + j;
                    // depthwise: i = channel, j = multiplier; conv: i = input, j = output.
                    let dst = if depthwise {
                        ((i * b + j) * kh + y) * kw + x
                    } else {
                        ((j * a + i) * kh + y) * kw + x
                    };
                    out[dst] = w[src];
                }
            }
        }
    }
    let shape = if depthwise {
        [a * b, 1, kh, kw]
    } else {
        [b, a, kh, kw]
    };
    Ok((shape, out))
}
