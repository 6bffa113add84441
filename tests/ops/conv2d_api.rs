//! conv2d's API around the shader: the CPU reference on hand-computed values, errors that name the
//! layer and the sizes, and the `Conv2d` builder's padding rules.

use crate::common::*;
use sshface::gpu::Graph;
use sshface::ops::conv2d::{conv2d, conv2d_with, Conv2d, ConvKernel};
use sshface::ops::Activation;
use sshface::reference::{conv2d::conv2d as conv_ref, CpuTensor};

#[test]
fn conv2d_reference_by_hand() {
    // All-ones 3x3 input and kernel, pad 1: corners see 4 taps, edges 6, the centre 9; + bias 0.5.
    let x = CpuTensor::new(&[1, 1, 3, 3], vec![1.0; 9]);
    let w = CpuTensor::new(&[1, 1, 3, 3], vec![1.0; 9]);
    let o = conv_ref(
        &x,
        &w,
        Some(&[0.5]),
        [1, 1],
        [1, 1, 1, 1],
        [1, 1],
        1,
        Activation::None,
        None,
    );
    assert_eq!(o.data, vec![4.5, 6.5, 4.5, 6.5, 9.5, 6.5, 4.5, 6.5, 4.5]);
    // Stride 2 with TF padding (0,1,0,1) on 4x4: the last row and column of windows hang over the
    // padding (9, 6, 6, 4 taps); weights −1 and LeakyReLU(0.5) halve the sums.
    let x = CpuTensor::new(&[1, 1, 4, 4], vec![1.0; 16]);
    let w = CpuTensor::new(&[1, 1, 3, 3], vec![-1.0; 9]);
    let o = conv_ref(
        &x,
        &w,
        None,
        [2, 2],
        [0, 1, 0, 1],
        [1, 1],
        1,
        Activation::Leaky(0.5),
        None,
    );
    assert_eq!(o.data, vec![-4.5, -3.0, -3.0, -2.0]);
}

fn err(
    x: [usize; 4],
    conv: &Conv2d,
    res: Option<[usize; 4]>,
    into: Option<([usize; 4], usize)>,
) -> String {
    let mut g = Graph::new();
    let tx = g.input("feat", &x).unwrap();
    let r = res.map(|s| g.input("skip", &s).unwrap());
    let t = into.map(|(s, off)| (g.tensor("concat", &s).unwrap(), off));
    conv2d(&mut g, "m1.conv", tx, conv, r, t)
        .unwrap_err()
        .to_string()
}

#[test]
fn conv2d_rejects_bad_input() {
    let Some(ctx) = gpu() else { return };
    let w = |s: &[usize]| {
        ctx.weight("m1.conv.weight", &vec![0.0; s.iter().product()], s)
            .unwrap()
    };
    let c = Conv2d::new(w(&[8, 4, 3, 3]), None);
    let check = |e: String, parts: &[&str]| {
        assert!(e.contains("m1.conv"), "{e}");
        for p in parts {
            assert!(e.contains(p), "missing '{p}' in: {e}");
        }
    };
    check(
        err([1, 6, 8, 8], &c, None, None),
        &["C_in 6", "[8, 4, 3, 3]"],
    );
    check(
        err([1, 6, 8, 8], &c.clone().with_groups(4), None, None),
        &["groups 4", "C_in 6"],
    );
    let c3 = Conv2d::new(w(&[8, 2, 3, 3]), None).with_groups(3);
    check(err([1, 6, 8, 8], &c3, None, None), &["groups 3", "C_out 8"]);
    let cb = Conv2d::new(w(&[8, 4, 3, 3]), Some(w(&[7])));
    check(err([1, 4, 8, 8], &cb, None, None), &["bias", "[7]", "[8]"]);
    let big = Conv2d::new(w(&[8, 4, 5, 5]), None).with_pad([0; 4]);
    check(
        err([1, 4, 4, 9], &big, None, None),
        &["5x5", "4x9", "empty"],
    );
    check(
        err([1, 4, 8, 8], &c, Some([1, 8, 8, 7]), None),
        &["residual", "skip", "[1, 8, 8, 7]", "[1, 8, 8, 8]"],
    );
    check(
        err([1, 4, 8, 8], &c, None, Some(([1, 16, 8, 8], 9))),
        &["concat", "9..17", "[1, 16, 8, 8]"],
    );
    check(
        err([1, 4, 8, 8], &c, None, Some(([2, 16, 8, 8], 0))),
        &["concat", "[2, 16, 8, 8]"],
    );
    check(
        err([1, 4, 8, 8], &c, None, Some(([1, 16, 8, 9], 0))),
        &["concat", "[1, 16, 8, 9]"],
    );
    check(
        err([1, 4, 8, 8], &c.clone().with_stride([0, 1]), None, None),
        &["stride [0, 1]"],
    );
    let mut g = Graph::new();
    let tx = g.input("feat", &[1, 4, 8, 8]).unwrap();
    let e = conv2d_with(&mut g, "m1.conv", tx, &c, None, None, ConvKernel::Depthwise)
        .unwrap_err()
        .to_string();
    check(e, &["Depthwise"]);
}

#[test]
fn conv2d_new_pads_same() {
    let Some(ctx) = gpu() else { return };
    let w = |s: &[usize]| ctx.weight("w", &vec![0.0; s.iter().product()], s).unwrap();
    for (k, pad) in [
        (1, [0, 0, 0, 0]),
        (3, [1, 1, 1, 1]),
        (5, [2, 2, 2, 2]),
        (2, [0, 1, 0, 1]),
    ] {
        let c = Conv2d::new(w(&[2, 3, k, k]), None);
        assert_eq!(c.pad, pad, "k={k}");
        assert_eq!(c.out_shape("l", [1, 3, 11, 7]).unwrap(), [1, 2, 11, 7]);
    }
    let c = Conv2d::new(w(&[2, 3, 3, 3]), None).with_dilation([2, 3]);
    assert_eq!(c.pad, [2, 2, 3, 3]);
    assert_eq!(c.out_shape("l", [1, 3, 11, 7]).unwrap(), [1, 2, 11, 7]);
    let c = c
        .with_stride([2, 2])
        .with_pad([0, 1, 0, 1])
        .with_dilation([1, 1])
        .with_pad([0, 1, 0, 1]);
    assert_eq!(c.out_shape("l", [1, 3, 11, 8]).unwrap(), [1, 2, 5, 4]);
}
