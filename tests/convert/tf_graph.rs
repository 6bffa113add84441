//! TF GraphDef → safetensors: a synthetic graph written here (Conv2D → Identity →
//! FusedBatchNormV3, DepthwiseConv2dNative, a BiasAdd head), errors for broken graphs, the
//! bundled file against the name table, and the real graph when present.

use sshface::convert::protobuf::write::Msg;
use sshface::convert::tf_graph::{convert_tf_graph_with, Fold, TfTable};

use super::assert_err;
use super::tables::{TF_LAYERS as LAYERS, TF_TABLE as TABLE};
use super::tf_synth::{attr_tensor, graph_bytes, node, synth, Enc, EPS1, EPSD};

/// The fold computed independently in f64: returns (OIHW weight, bias) from an HWIO filter.
fn fold_hwio(
    w: &[f32],
    [kh, kw, i_n, o_n]: [usize; 4],
    bn: &[Vec<f32>; 4],
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let s: Vec<f64> = (0..o_n)
        .map(|o| bn[0][o] as f64 / (bn[3][o] as f64 + eps as f64).sqrt())
        .collect();
    let beta = |o: usize| if bn[1].len() == 1 { bn[1][0] } else { bn[1][o] } as f64;
    let mut out = Vec::new();
    for o in 0..o_n {
        for i in 0..i_n {
            for y in 0..kh {
                for x in 0..kw {
                    out.push((w[((y * kw + x) * i_n + i) * o_n + o] as f64 * s[o]) as f32);
                }
            }
        }
    }
    let b = (0..o_n)
        .map(|o| (beta(o) - bn[2][o] as f64 * s[o]) as f32)
        .collect();
    (out, b)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Bit equality, reporting the first differing index and how many differ.
#[track_caller]
pub fn assert_bits(case: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{case}: length");
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{case}: {} of {} values differ in bits; first at {i}: got {:e}, want {:e}",
            bad.len(),
            got.len(),
            got[i],
            want[i]
        );
    }
}

#[test]
fn synthetic_graph_folds_transposes_and_names() {
    let s = synth();
    let c = convert_tf_graph_with(&graph_bytes(&s.nodes), "synthetic.pb", &TABLE).unwrap();
    let names: Vec<&str> = c.tensors.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "a.conv.weight",
            "a.conv.bias",
            "a.dw.weight",
            "a.dw.bias",
            "head.weight",
            "head.bias"
        ]
    );
    let shapes: Vec<&[usize]> = c.tensors.iter().map(|t| t.1.as_slice()).collect();
    assert_eq!(
        shapes,
        [
            &[5, 4, 3, 2][..],
            &[5],
            &[5, 1, 3, 3],
            &[5],
            &[4, 5, 1, 1],
            &[4]
        ]
    );

    // Bit-exact: the converter must do the same f64 arithmetic with one final rounding.
    let (w1, b1) = fold_hwio(&s.w1, [3, 2, 4, 5], &s.bn1, EPS1);
    assert_bits("conv weight", &c.tensors[0].2, &w1);
    assert_bits("conv bias", &c.tensors[1].2, &b1);
    // Depthwise [kh, kw, C, 1] → [C, 1, kh, kw]: channel c is the output channel of the fold.
    let sd: Vec<f64> = (0..5)
        .map(|c| s.bnd[0][c] as f64 / (s.bnd[3][c] as f64 + EPSD as f64).sqrt())
        .collect();
    let want_dw: Vec<f32> = (0..45)
        .map(|k| (s.wd[(k % 9) * 5 + k / 9] as f64 * sd[k / 9]) as f32)
        .collect();
    assert_bits("depthwise weight", &c.tensors[2].2, &want_dw);
    let want_bd: Vec<f32> = (0..5)
        .map(|c| (s.bnd[1][c] as f64 - s.bnd[2][c] as f64 * sd[c]) as f32)
        .collect();
    assert_bits("depthwise bias", &c.tensors[3].2, &want_bd);
    // Head: plain transpose, bias unchanged.
    let want_h: Vec<f32> = (0..20).map(|k| s.wh[(k % 5) * 4 + k / 5]).collect();
    assert_bits("head weight", &c.tensors[4].2, &want_h);
    assert_bits("head bias", &c.tensors[5].2, &s.bh);

    // The expectations discriminate: a wrong transpose or no fold would be caught.
    let wrong_t: Vec<f32> = (0..120).map(|k| (s.w1[k] as f64) as f32).collect();
    assert_ne!(bits(&w1), bits(&wrong_t));
    assert_ne!(bits(&want_h), bits(&s.wh));
    assert_eq!(c.metadata["source"], "synthetic.pb");
    assert_eq!(c.metadata["sha256"].len(), 64);
    assert!(c.metadata.contains_key("bn_fold") && c.metadata.contains_key("format"));
}

fn without(nodes: &[(String, Msg)], name: &str) -> Vec<(String, Msg)> {
    let out: Vec<_> = nodes.iter().filter(|(n, _)| n != name).cloned().collect();
    assert_eq!(out.len() + 1, nodes.len(), "no node {name} to drop");
    out
}

#[test]
fn broken_graphs_are_errors_naming_the_node() {
    let s = synth();
    let conv = |nodes: &[(String, Msg)], t: &TfTable| {
        convert_tf_graph_with(&graph_bytes(nodes), "synthetic.pb", t).map(|c| c.tensors.len())
    };
    assert_err(
        conv(&without(&s.nodes, "M/c1/Conv2D"), &TABLE),
        &["synthetic.pb", "a.conv", "no node M/c1/Conv2D"],
    );
    assert_err(
        conv(&without(&s.nodes, "M/bn1/ReadVariableOp/resource"), &TABLE),
        &["a.conv", "no node M/bn1/ReadVariableOp/resource"],
    );
    assert_err(
        conv(&without(&s.nodes, "M/h/BiasAdd"), &TABLE),
        &["head", "M/h/Conv2D", "exactly one"],
    );
    let mut extra = s.nodes.clone();
    extra.push(node(
        "M/extra/Conv2D",
        "Conv2D",
        &["x", "M/c1/Conv2D/ReadVariableOp"],
        &[],
    ));
    assert_err(
        conv(&extra, &TABLE),
        &["M/extra/Conv2D", "not in the name table"],
    );
    // Two consumers of one conv: ambiguous.
    let mut two = s.nodes.clone();
    two.push(node("M/other", "Relu", &["M/h/Conv2D"], &[]));
    assert_err(conv(&two, &TABLE), &["head", "M/other (Relu)"]);
    let mut bad_shape = LAYERS;
    bad_shape[0].shape = [5, 4, 2, 3];
    assert_err(
        conv(
            &s.nodes,
            &TfTable {
                prefix: "M/",
                layers: &bad_shape,
            },
        ),
        &[
            "a.conv",
            "expected weight shape [5, 4, 2, 3]",
            "found [5, 4, 3, 2]",
        ],
    );
    let mut bad_fold = LAYERS;
    bad_fold[0].fold = Fold::BiasAdd;
    assert_err(
        conv(
            &s.nodes,
            &TfTable {
                prefix: "M/",
                layers: &bad_fold,
            },
        ),
        &["a.conv", "FusedBatchNormV3", "BiasAdd"],
    );
    // An int32 constant where a float weight is expected.
    let mut int = without(&s.nodes, "M/h/BiasAdd/ReadVariableOp/resource");
    int.push(node(
        "M/h/BiasAdd/ReadVariableOp/resource",
        "Const",
        &[],
        &[("value", attr_tensor(3, &[4], &[0.0; 4], Enc::Content))],
    ));
    assert_err(
        conv(&int, &TABLE),
        &["head", "M/h/BiasAdd/ReadVariableOp/resource", "dtype 3"],
    );
    let mut short = without(&s.nodes, "M/h/BiasAdd/ReadVariableOp/resource");
    short.push(node(
        "M/h/BiasAdd/ReadVariableOp/resource",
        "Const",
        &[],
        &[("value", attr_tensor(1, &[4], &[0.0; 3], Enc::Content))],
    ));
    assert_err(
        conv(&short, &TABLE),
        &["head", "tensor_content has 12 bytes"],
    );
    let mut no_eps = without(&s.nodes, "M/dw_bn/FusedBatchNormV3");
    let i2: Vec<String> = std::iter::once("M/dw/depthwise".to_string())
        .chain(
            [
                "ReadVariableOp",
                "ReadVariableOp_1",
                "FusedBatchNormV3/ReadVariableOp",
                "FusedBatchNormV3/ReadVariableOp_1",
            ]
            .iter()
            .map(|s| format!("M/dw_bn/{s}")),
        )
        .collect();
    let i2: Vec<&str> = i2.iter().map(String::as_str).collect();
    no_eps.push(node(
        "M/dw_bn/FusedBatchNormV3",
        "FusedBatchNormV3",
        &i2,
        &[],
    ));
    assert_err(conv(&no_eps, &TABLE), &["a.dw", "no epsilon"]);
}

#[test]
fn truncated_graphs_are_errors_not_panics() {
    let bytes = graph_bytes(&synth().nodes);
    for n in (0..bytes.len()).step_by(7) {
        let r = convert_tf_graph_with(&bytes[..n], "cut.pb", &TABLE);
        assert_err(r.map(|c| c.tensors.len()), &["cut.pb"]);
    }
}

/// `nodes` with the node of `new`'s name replaced by `new`.
fn replaced(nodes: &[(String, Msg)], new: (String, Msg)) -> Vec<(String, Msg)> {
    assert!(nodes.iter().any(|(n, _)| *n == new.0), "no node {}", new.0);
    nodes
        .iter()
        .map(|n| if n.0 == new.0 { new.clone() } else { n.clone() })
        .collect()
}

/// A Const node `name` holding `vals` of `shape`.
fn constant(name: &str, shape: &[usize], vals: &[f32], enc: Enc) -> (String, Msg) {
    node(
        name,
        "Const",
        &[],
        &[("value", attr_tensor(1, shape, vals, enc))],
    )
}

/// A stored NaN, and an infinity made by folding (a BatchNorm variance of −ε), are refused naming the tensor.
#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let s = synth();
    let conv = |nodes: &[(String, Msg)]| {
        convert_tf_graph_with(&graph_bytes(nodes), "synthetic.pb", &TABLE).map(|c| c.tensors.len())
    };
    let mut w1 = s.w1.clone();
    w1[7] = f32::NAN;
    let nan = constant(
        "M/c1/Conv2D/ReadVariableOp/resource",
        &[3, 2, 4, 5],
        &w1,
        Enc::Content,
    );
    assert_err(
        conv(&replaced(&s.nodes, nan)),
        &[
            "synthetic.pb",
            "tensor a.conv.weight",
            "non-finite value NaN",
        ],
    );
    let var = constant(
        "M/dw_bn/FusedBatchNormV3/ReadVariableOp_1/resource",
        &[5],
        &[-EPSD; 5],
        Enc::Content,
    );
    assert_err(
        conv(&replaced(&s.nodes, var)),
        &["synthetic.pb", "tensor a.dw.weight", "non-finite value"],
    );
    // The unchanged graph converts: the refusals above come from the values alone.
    assert_eq!(conv(&s.nodes).unwrap(), 6);
}

/// Found auditing the readers for allocations sized by untrusted lengths: one `float_val` broadcast to a shape of 2^60 values asked for that allocation (or,
/// with the element count wrapping, indexed out of bounds). Now the shape is refused before anything is allocated.
#[test]
fn a_broadcast_to_a_huge_shape_is_refused_before_allocating() {
    let s = synth();
    for shape in [
        vec![1 << 30, 1 << 30],
        vec![1 << 32, 1 << 32, 1 << 32, 1 << 32],
    ] {
        let big = constant(
            "M/c1/Conv2D/ReadVariableOp/resource",
            &shape,
            &[1.0],
            Enc::FloatVal,
        );
        let r = convert_tf_graph_with(
            &graph_bytes(&replaced(&s.nodes, big)),
            "synthetic.pb",
            &TABLE,
        );
        assert_err(
            r.map(|c| c.tensors.len()),
            &["synthetic.pb", "a.conv", "more than 67108864 values"],
        );
    }
}
