//! A synthetic frozen GraphDef written with the protobuf writer: Conv2D → Identity →
//! FusedBatchNormV3, DepthwiseConv2dNative → FusedBatchNormV3, and a 1×1 head → BiasAdd,
//! with parameters behind `Const → Identity` as Keras variables look once frozen.

use sshface::convert::protobuf::write::Msg;

fn attr_f(v: f32) -> Msg {
    let mut m = Msg::new();
    m.f32(4, v);
    m
}

fn attr_b(v: bool) -> Msg {
    let mut m = Msg::new();
    m.varint(5, v.into());
    m
}

/// How a constant's values are encoded in the TensorProto.
#[derive(Clone, Copy)]
pub enum Enc {
    Content,
    FloatVal,
}

pub fn attr_tensor(dtype: u64, shape: &[usize], vals: &[f32], enc: Enc) -> Msg {
    let mut sh = Msg::new();
    for &d in shape {
        let mut dim = Msg::new();
        dim.varint(1, d as u64);
        sh.message(2, &dim);
    }
    let mut t = Msg::new();
    t.varint(1, dtype).message(2, &sh);
    match enc {
        Enc::Content => {
            let b: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
            t.bytes(4, &b)
        }
        Enc::FloatVal => t.packed_f32(5, vals),
    };
    let mut a = Msg::new();
    a.message(8, &t);
    a
}

pub fn node(name: &str, op: &str, inputs: &[&str], attrs: &[(&str, Msg)]) -> (String, Msg) {
    let mut n = Msg::new();
    n.string(1, name).string(2, op);
    for i in inputs {
        n.string(3, i);
    }
    for (k, v) in attrs {
        let mut e = Msg::new();
        e.string(1, k).message(2, v);
        n.message(5, &e);
    }
    (name.to_string(), n)
}

/// Adds `Const <name>/resource` → `Identity <name>`, as Keras variables look once frozen.
fn param(nodes: &mut Vec<(String, Msg)>, name: &str, shape: &[usize], vals: &[f32], enc: Enc) {
    let res = format!("{name}/resource");
    nodes.push(node(
        &res,
        "Const",
        &[],
        &[("value", attr_tensor(1, shape, vals, enc))],
    ));
    nodes.push(node(name, "Identity", &[&res], &[]));
}

fn lcg(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

pub struct Synth {
    pub nodes: Vec<(String, Msg)>,
    pub w1: Vec<f32>,
    pub bn1: [Vec<f32>; 4],
    pub wd: Vec<f32>,
    pub bnd: [Vec<f32>; 4],
    pub wh: Vec<f32>,
    pub bh: Vec<f32>,
}

pub const EPS1: f32 = 1e-3;
pub const EPSD: f32 = 1.001e-5;

/// Conv [kh 3, kw 2, I 4, O 5] → BN; depthwise [3, 3, 5, 1] → BN; head [1, 1, 5, 4] → BiasAdd.
pub fn synth() -> Synth {
    let w1 = lcg(1, 3 * 2 * 4 * 5, -1.0, 1.0);
    // β is one float_val broadcast to all 5 channels; μ is a packed float_val list.
    let bn1 = [
        lcg(2, 5, 0.5, 2.0),
        vec![0.25; 5],
        lcg(4, 5, -1.0, 1.0),
        lcg(5, 5, 0.01, 3.0),
    ];
    let wd = lcg(6, 3 * 3 * 5, -1.0, 1.0);
    let bnd = [
        lcg(7, 5, 0.5, 2.0),
        lcg(8, 5, -1.0, 1.0),
        lcg(9, 5, -1.0, 1.0),
        lcg(10, 5, 1e-4, 1e-3),
    ];
    let wh = lcg(11, 5 * 4, -1.0, 1.0);
    let bh = lcg(12, 4, -1.0, 1.0);
    // A control edge is not a data consumer. (First, so that every truncation of the graph
    // loses a needed node.)
    let mut n = vec![
        node("sink", "NoOp", &["^M/h/Conv2D", "^M/c1/Conv2D"], &[]),
        node("x", "Placeholder", &[], &[]),
    ];
    param(
        &mut n,
        "M/c1/Conv2D/ReadVariableOp",
        &[3, 2, 4, 5],
        &w1,
        Enc::Content,
    );
    n.push(node(
        "M/c1/Conv2D",
        "Conv2D",
        &["x", "M/c1/Conv2D/ReadVariableOp"],
        &[],
    ));
    n.push(node("M/c1/id", "Identity", &["M/c1/Conv2D:0"], &[]));
    let bn_names = [
        "ReadVariableOp",
        "ReadVariableOp_1",
        "FusedBatchNormV3/ReadVariableOp",
        "FusedBatchNormV3/ReadVariableOp_1",
    ];
    for (k, enc) in [Enc::Content, Enc::FloatVal, Enc::FloatVal, Enc::Content]
        .iter()
        .enumerate()
    {
        let vals = if k == 1 { &bn1[k][..1] } else { &bn1[k][..] };
        param(&mut n, &format!("M/bn1/{}", bn_names[k]), &[5], vals, *enc);
        param(
            &mut n,
            &format!("M/dw_bn/{}", bn_names[k]),
            &[5],
            &bnd[k],
            Enc::Content,
        );
    }
    let bn_inputs = |p: &str, x: &str| -> Vec<String> {
        std::iter::once(x.to_string())
            .chain(bn_names.iter().map(|s| format!("{p}/{s}")))
            .collect()
    };
    let i1 = bn_inputs("M/bn1", "M/c1/id:0");
    let i1: Vec<&str> = i1.iter().map(String::as_str).collect();
    n.push(node(
        "M/bn1/FusedBatchNormV3",
        "FusedBatchNormV3",
        &i1,
        &[("epsilon", attr_f(EPS1)), ("is_training", attr_b(false))],
    ));
    param(
        &mut n,
        "M/dw/depthwise/ReadVariableOp",
        &[3, 3, 5, 1],
        &wd,
        Enc::Content,
    );
    n.push(node(
        "M/dw/depthwise",
        "DepthwiseConv2dNative",
        &["M/bn1/FusedBatchNormV3", "M/dw/depthwise/ReadVariableOp"],
        &[],
    ));
    let i2 = bn_inputs("M/dw_bn", "M/dw/depthwise");
    let i2: Vec<&str> = i2.iter().map(String::as_str).collect();
    n.push(node(
        "M/dw_bn/FusedBatchNormV3",
        "FusedBatchNormV3",
        &i2,
        &[("epsilon", attr_f(EPSD))],
    ));
    param(
        &mut n,
        "M/h/Conv2D/ReadVariableOp",
        &[1, 1, 5, 4],
        &wh,
        Enc::Content,
    );
    n.push(node(
        "M/h/Conv2D",
        "Conv2D",
        &["M/dw_bn/FusedBatchNormV3:0", "M/h/Conv2D/ReadVariableOp"],
        &[],
    ));
    param(
        &mut n,
        "M/h/BiasAdd/ReadVariableOp",
        &[4],
        &bh,
        Enc::Content,
    );
    n.push(node(
        "M/h/BiasAdd",
        "BiasAdd",
        &["M/h/Conv2D", "M/h/BiasAdd/ReadVariableOp"],
        &[],
    ));
    Synth {
        nodes: n,
        w1,
        bn1,
        wd,
        bnd,
        wh,
        bh,
    }
}

pub fn graph_bytes(nodes: &[(String, Msg)]) -> Vec<u8> {
    let mut versions = Msg::new();
    versions.varint(1, 175);
    let mut g = Msg::new();
    g.message(4, &versions); // GraphDef.versions: skipped as unknown
    for (_, n) in nodes {
        g.message(1, n);
    }
    g.finish()
}
