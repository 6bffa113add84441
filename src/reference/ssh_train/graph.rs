//! A minimal tape for the training-step oracle: the forward pass records every node's output (post-ReLU where the
//! layer has one) and its inputs, the backward pass walks the tape in reverse with the reference gradient ops.
//! Gradients of nodes with several consumers (ssh_dimred, conv5_3) are summed because every consumer adds into
//! the same slot. Nodes below which nothing is trainable never receive a gradient, so the backward stops there.

use crate::convert::caffe::SSH_VGG16_LAYERS;
use crate::error::{Error, Result};
use crate::model::weights::WeightFile;
use crate::ops::max_pool::Pool;
use crate::ops::Activation;
use crate::reference::conv2d_grad::{conv2d_grad_input, conv2d_grad_params, Geometry};
use crate::reference::{self as r, CpuTensor};

/// A parameter gradient: (`<layer>.weight.grad` or `<layer>.bias.grad`, shape, values).
pub type Grad = (String, Vec<usize>, Vec<f32>);

/// Caffe max pool k2 s2 p0, ceil mode (pool1–pool4 and pool6).
const POOL: Pool = Pool {
    kernel: [2, 2],
    stride: [2, 2],
    pad: [0, 0],
    ceil_mode: true,
};

/// Taps of the fixed bilinear deconvolution (spec §3.1): output `2j + t − 1` receives `TAPS[t] · x[j]`.
const TAPS: [f64; 4] = [0.25, 0.75, 0.75, 0.25];

/// What a node computes from its inputs.
enum Op {
    /// The network input.
    Input,
    /// Conv layer `name` (stride 1, pad k/2), ReLU after when `relu`.
    Conv { name: String, relu: bool },
    /// Caffe max pool k2 s2 ceil mode.
    Pool,
    /// The fixed bilinear deconvolution cropped top-left to the node's output size.
    Up,
    /// Elementwise sum of the two inputs, no activation.
    Add,
    /// Channel concat of the inputs, then ReLU.
    ConcatRelu,
}

struct Node {
    op: Op,
    inputs: Vec<usize>,
    out: CpuTensor,
    /// Whether some trainable layer is at or below this node, i.e. whether its output gradient is needed.
    needs: bool,
}

/// The recorded forward pass. Node ids are indices in recording order, so inputs always precede consumers.
pub struct Graph<'a> {
    wf: &'a WeightFile,
    trainable: &'a dyn Fn(&str) -> bool,
    nodes: Vec<Node>,
}

/// The OIHW weight shape of a stored layer (spec §7), or an error naming the layer.
fn weight_shape(name: &str) -> Result<[usize; 4]> {
    SSH_VGG16_LAYERS
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.weight)
        .ok_or_else(|| Error::shape(name, "not a layer of ssh-vgg16 (spec §7)"))
}

/// Stride 1, pad k/2 (every conv of the network).
fn geometry(k: usize) -> Geometry {
    Geometry {
        stride: [1, 1],
        pad: [k / 2; 4],
        dilation: [1, 1],
        groups: 1,
    }
}

/// Adds `g` into the gradient slot `slot` (the sum over a node's consumers).
fn accumulate(slot: &mut Option<CpuTensor>, g: CpuTensor) {
    match slot {
        Some(s) => s.data.iter_mut().zip(&g.data).for_each(|(a, b)| *a += b),
        None => *slot = Some(g),
    }
}

/// Adjoint of [`upsample_bilinear`](r::upsample_bilinear::upsample_bilinear) for an input of `in_hw`: the
/// transposed deconvolution, per axis `dx[j] = 0.75·(d[2j] + d[2j+1]) + 0.25·(d[2j−1] + d[2j+2])`, where `d` is 0
/// outside the crop (the cropped-away row/column never reached the loss). f64 sums, like the conv references.
fn upsample_bilinear_grad(dy: &CpuTensor, in_hw: [usize; 2]) -> CpuTensor {
    let [n, c, ho, wo] = dy.nchw();
    let [h, w] = in_hw;
    // The output positions (within the crop) that input j feeds along an axis of cropped length `len`.
    let taps = |j: usize, len: usize| {
        TAPS.iter().enumerate().filter_map(move |(t, &v)| {
            let o = (2 * j + t).checked_sub(1)?;
            (o < len).then_some((o, v))
        })
    };
    let mut dx = CpuTensor::zeros(&[n, c, h, w]);
    for plane in 0..n * c {
        let d = &dy.data[plane * ho * wo..][..ho * wo];
        for y in 0..h {
            for x in 0..w {
                let mut s = 0f64;
                for (oy, vy) in taps(y, ho) {
                    for (ox, vx) in taps(x, wo) {
                        s += vy * vx * d[oy * wo + ox] as f64;
                    }
                }
                dx.data[(plane * h + y) * w + x] = s as f32;
            }
        }
    }
    dx
}

impl<'a> Graph<'a> {
    /// A tape holding only the input `x`; `trainable` decides by layer name which layers get gradients.
    pub fn new(wf: &'a WeightFile, trainable: &'a dyn Fn(&str) -> bool, x: CpuTensor) -> Self {
        let input = Node {
            op: Op::Input,
            inputs: vec![],
            out: x,
            needs: false,
        };
        Graph {
            wf,
            trainable,
            nodes: vec![input],
        }
    }

    /// Id of the input node.
    pub const INPUT: usize = 0;

    /// Another input node holding `t` (a feature map given instead of computed, e.g. a cached trunk output).
    pub fn input(&mut self, t: CpuTensor) -> usize {
        self.push(Op::Input, vec![], t)
    }

    /// The output of node `id`.
    pub fn out(&self, id: usize) -> &CpuTensor {
        &self.nodes[id].out
    }

    fn push(&mut self, op: Op, inputs: Vec<usize>, out: CpuTensor) -> usize {
        let below = inputs.iter().any(|&i| self.nodes[i].needs);
        let needs = below || matches!(&op, Op::Conv { name, .. } if (self.trainable)(name));
        self.nodes.push(Node {
            op,
            inputs,
            out,
            needs,
        });
        self.nodes.len() - 1
    }

    /// Weight tensor and bias of layer `name`, shape-checked against the spec's table.
    fn params(&self, name: &str) -> Result<(CpuTensor, &'a [f32])> {
        let shape = weight_shape(name)?;
        let w = self.wf.get(&format!("{name}.weight"), &shape)?;
        let b = self.wf.get(&format!("{name}.bias"), &shape[..1])?;
        Ok((CpuTensor::new(&shape, w.to_vec()), b))
    }

    /// Conv layer `name` on node `input`, ReLU after when `relu`.
    pub fn conv(&mut self, name: &str, input: usize, relu: bool) -> Result<usize> {
        let (w, b) = self.params(name)?;
        let x = &self.nodes[input].out;
        let [_, c_in, _, _] = x.nchw();
        if w.shape[1] != c_in {
            let msg = format!("input has {c_in} channels, weight is {:?}", w.shape);
            return Err(Error::shape(name, msg));
        }
        let geo = geometry(w.shape[2]);
        let act = if relu {
            Activation::Relu
        } else {
            Activation::None
        };
        let out = r::conv2d::conv2d(x, &w, Some(b), geo.stride, geo.pad, [1, 1], 1, act, None);
        let op = Op::Conv {
            name: name.to_string(),
            relu,
        };
        Ok(self.push(op, vec![input], out))
    }

    /// Caffe ceil-mode max pool k2 s2 of node `input`.
    pub fn pool(&mut self, input: usize) -> usize {
        let out = r::max_pool::max_pool(&self.nodes[input].out, &POOL);
        self.push(Op::Pool, vec![input], out)
    }

    /// The fixed bilinear deconvolution of node `input`, cropped top-left to `hw`.
    pub fn up(&mut self, input: usize, hw: [usize; 2]) -> usize {
        let out = r::upsample_bilinear::upsample_bilinear(&self.nodes[input].out, hw);
        self.push(Op::Up, vec![input], out)
    }

    /// Sum of nodes `a` and `b` (same shape), no activation.
    pub fn add(&mut self, a: usize, b: usize) -> usize {
        let (ta, tb) = (&self.nodes[a].out, &self.nodes[b].out);
        assert_eq!(ta.shape, tb.shape, "eltwise sum of different shapes");
        let out = CpuTensor::new(&ta.shape, r::add::add(&ta.data, &tb.data, Activation::None));
        self.push(Op::Add, vec![a, b], out)
    }

    /// Channel concat of `parts` (same H, W) followed by a ReLU.
    pub fn concat_relu(&mut self, parts: &[usize]) -> usize {
        let [_, _, h, w] = self.nodes[parts[0]].out.nchw();
        let mut data = Vec::new();
        for &p in parts {
            let t = &self.nodes[p].out;
            assert_eq!(t.nchw()[2..], [h, w], "concat of {:?}", t.shape);
            data.extend(t.data.iter().map(|v| v.max(0.0)));
        }
        let c = data.len() / (h * w);
        self.push(
            Op::ConcatRelu,
            parts.to_vec(),
            CpuTensor::new(&[1, c, h, w], data),
        )
    }

    /// Backpropagates the output gradients `seeds` (node id, dL/d output) through the tape and returns the
    /// weight and bias gradients of the trainable layers, in tape order from the top.
    pub fn backward(&self, seeds: Vec<(usize, CpuTensor)>) -> Result<Vec<Grad>> {
        let mut slots: Vec<Option<CpuTensor>> = (0..self.nodes.len()).map(|_| None).collect();
        for (id, g) in seeds {
            if self.nodes[id].needs {
                accumulate(&mut slots[id], g);
            }
        }
        let mut grads = Vec::new();
        for id in (0..self.nodes.len()).rev() {
            let Some(g) = slots[id].take() else { continue };
            let node = &self.nodes[id];
            // Input gradients: (input node, dL/d input), only for inputs with something trainable below.
            let mut dins: Vec<(usize, CpuTensor)> = Vec::new();
            let wanted = |i: usize| self.nodes[i].needs;
            match &node.op {
                Op::Input => {}
                Op::Conv { name, relu } => {
                    // The ReLU is in place (spec §1): its gradient is taken on the post-ReLU output.
                    let g = if *relu {
                        CpuTensor::new(&g.shape, r::relu_grad::relu_grad(&node.out.data, &g.data))
                    } else {
                        g
                    };
                    let (w, _) = self.params(name)?;
                    let geo = geometry(w.shape[2]);
                    let x = &self.nodes[node.inputs[0]];
                    if (self.trainable)(name) {
                        let (dw, db) = conv2d_grad_params(&x.out, &g, w.nchw(), &geo);
                        grads.push((format!("{name}.weight.grad"), dw.shape, dw.data));
                        grads.push((format!("{name}.bias.grad"), vec![db.len()], db));
                    }
                    if x.needs {
                        let dx = conv2d_grad_input(&g, &w, x.out.nchw(), &geo);
                        dins.push((node.inputs[0], dx));
                    }
                }
                Op::Pool => {
                    let i = node.inputs[0];
                    if wanted(i) {
                        let dx = r::max_pool_grad::max_pool_grad(&self.nodes[i].out, &g, &POOL);
                        dins.push((i, dx));
                    }
                }
                Op::Up => {
                    let i = node.inputs[0];
                    if wanted(i) {
                        let hw = <[usize; 2]>::try_from(&self.nodes[i].out.shape[2..]).unwrap();
                        dins.push((i, upsample_bilinear_grad(&g, hw)));
                    }
                }
                Op::Add => {
                    for &i in node.inputs.iter().filter(|&&i| wanted(i)) {
                        dins.push((i, g.clone()));
                    }
                }
                Op::ConcatRelu => {
                    let g = r::relu_grad::relu_grad(&node.out.data, &g.data);
                    let mut off = 0;
                    for &i in &node.inputs {
                        let shape = &self.nodes[i].out.shape;
                        let len = shape.iter().product::<usize>();
                        if wanted(i) {
                            dins.push((i, CpuTensor::new(shape, g[off..off + len].to_vec())));
                        }
                        off += len;
                    }
                }
            }
            for (i, d) in dins {
                accumulate(&mut slots[i], d);
            }
        }
        Ok(grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transposed op is the adjoint of the forward: ⟨up(x), d⟩ = ⟨x, upᵀ(d)⟩, for crops that drop the last
    /// row/column (odd L4) and for crops that keep everything (even L4).
    #[test]
    fn upsample_grad_is_the_adjoint() {
        let val = |i: usize| ((i * 37 % 11) as f32 - 5.0) / 3.0;
        for (in_hw, out_hw) in [([3, 4], [5, 8]), ([2, 3], [4, 5]), ([1, 1], [1, 2])] {
            let n = 2 * in_hw[0] * in_hw[1];
            let x = CpuTensor::new(&[1, 2, in_hw[0], in_hw[1]], (0..n).map(val).collect());
            let m = 2 * out_hw[0] * out_hw[1];
            let d = CpuTensor::new(
                &[1, 2, out_hw[0], out_hw[1]],
                (0..m).map(|i| val(i + 3)).collect(),
            );
            let up = r::upsample_bilinear::upsample_bilinear(&x, out_hw);
            let dx = upsample_bilinear_grad(&d, in_hw);
            let dot =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p * q) as f64).sum::<f64>();
            let (lhs, rhs) = (dot(&up.data, &d.data), dot(&x.data, &dx.data));
            assert!(
                (lhs - rhs).abs() < 1e-5 * lhs.abs().max(1.0),
                "{in_hw:?}→{out_hw:?}: {lhs} vs {rhs}"
            );
        }
    }
}
