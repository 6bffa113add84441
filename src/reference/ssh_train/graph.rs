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
                        let shape = self.nodes[i].out.nchw();
                        dins.push((
                            i,
                            r::upsample_bilinear_grad::upsample_bilinear_grad(&g, shape),
                        ));
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
