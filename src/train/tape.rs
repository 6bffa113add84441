//! A recorded forward pass and its backward: each op appended through the tape also records what its backward
//! needs, and [`Tape::backward`] walks the record in reverse, appending the gradient shaders to the same graph.
//!
//! Gradients flow only where they are needed: a tensor "requires grad" when a trained layer lies upstream of it, so
//! a frozen backbone costs no backward work, and parameter gradients are accumulated into the layers' external
//! gradient buffers (several images per update, several plans per input size). Forward activations stay alive
//! because backward steps read them; the graph's arena plans their memory like any other tensor.

use std::collections::HashMap;

use crate::error::Result;
use crate::gpu::{Graph, TensorId};
use crate::ops::add::add;
use crate::ops::conv2d::conv2d;
use crate::ops::conv2d_grad::{conv2d_grad_input, conv2d_grad_params, OutGrad, ParamGrads};
use crate::ops::max_pool::{max_pool, Pool};
use crate::ops::max_pool_grad::max_pool_grad;
use crate::ops::relu_grad::relu_grad;
use crate::ops::upsample_bilinear::upsample_bilinear;
use crate::ops::upsample_bilinear_grad::upsample_bilinear_grad;
use crate::ops::Activation;
use crate::train::net::Layer;

/// A tensor of the recorded pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node(usize);

struct NodeInfo {
    id: TensorId,
    shape: [usize; 4],
    requires: bool,
    grad: Option<TensorId>,
}

enum Op<'a> {
    /// `y = act(conv(x))`, written at channel `c_off` of `y` when it is a concatenation.
    Conv {
        layer: &'a Layer,
        x: Node,
        y: Node,
        c_off: Option<usize>,
    },
    Pool {
        x: Node,
        y: Node,
        pool: Pool,
        label: String,
    },
    Up {
        x: Node,
        y: Node,
        label: String,
    },
    Add {
        a: Node,
        b: Node,
        y: Node,
    },
}

#[derive(Default)]
pub struct Tape<'a> {
    nodes: Vec<NodeInfo>,
    ops: Vec<Op<'a>>,
}

impl<'a> Tape<'a> {
    pub fn new() -> Self {
        Tape {
            nodes: Vec::new(),
            ops: Vec::new(),
        }
    }

    /// A tensor made outside the tape (the network input, a frozen stage): no gradient flows into it.
    pub fn leaf(&mut self, g: &Graph, id: TensorId) -> Result<Node> {
        let shape = g.nchw("tape", id)?;
        Ok(self.node(id, shape, false))
    }

    fn node(&mut self, id: TensorId, shape: [usize; 4], requires: bool) -> Node {
        self.nodes.push(NodeInfo {
            id,
            shape,
            requires,
            grad: None,
        });
        Node(self.nodes.len() - 1)
    }

    pub fn id(&self, n: Node) -> TensorId {
        self.nodes[n.0].id
    }

    pub fn shape(&self, n: Node) -> [usize; 4] {
        self.nodes[n.0].shape
    }

    fn trains(layer: &Layer) -> bool {
        layer.state.is_some()
    }

    /// `layer` on `x`, into a new tensor.
    pub fn conv(&mut self, g: &mut Graph, layer: &'a Layer, x: Node) -> Result<Node> {
        let id = conv2d(
            g,
            &layer.conv.name,
            self.id(x),
            &layer.conv.conv,
            None,
            None,
        )?;
        let shape = g.nchw(&layer.conv.name, id)?;
        let y = self.node(id, shape, self.nodes[x.0].requires || Self::trains(layer));
        self.ops.push(Op::Conv {
            layer,
            x,
            y,
            c_off: None,
        });
        Ok(y)
    }

    /// A concatenation `[N, c, H, W]` that [`Tape::conv_into`] fills.
    pub fn concat(&mut self, g: &mut Graph, name: &str, shape: [usize; 4]) -> Result<Node> {
        let id = g.tensor(name, &shape)?;
        Ok(self.node(id, shape, false))
    }

    /// `layer` on `x`, written at channel `c_off` of the concatenation `y`.
    pub fn conv_into(
        &mut self,
        g: &mut Graph,
        layer: &'a Layer,
        x: Node,
        y: Node,
        c_off: usize,
    ) -> Result<()> {
        let yid = self.id(y);
        conv2d(
            g,
            &layer.conv.name,
            self.id(x),
            &layer.conv.conv,
            None,
            Some((yid, c_off)),
        )?;
        let requires = self.nodes[x.0].requires || Self::trains(layer);
        self.nodes[y.0].requires |= requires;
        self.ops.push(Op::Conv {
            layer,
            x,
            y,
            c_off: Some(c_off),
        });
        Ok(())
    }

    pub fn pool(&mut self, g: &mut Graph, label: &str, x: Node, pool: Pool) -> Result<Node> {
        let id = max_pool(g, label, self.id(x), &pool)?;
        let shape = g.nchw(label, id)?;
        let y = self.node(id, shape, self.nodes[x.0].requires);
        self.ops.push(Op::Pool {
            x,
            y,
            pool,
            label: label.to_string(),
        });
        Ok(y)
    }

    /// SSH's fixed bilinear ×2 deconvolution cropped top-left to `out_hw`.
    pub fn upsample(
        &mut self,
        g: &mut Graph,
        label: &str,
        x: Node,
        out_hw: [usize; 2],
    ) -> Result<Node> {
        let id = upsample_bilinear(g, label, self.id(x), out_hw)?;
        let shape = g.nchw(label, id)?;
        let y = self.node(id, shape, self.nodes[x.0].requires);
        self.ops.push(Op::Up {
            x,
            y,
            label: label.to_string(),
        });
        Ok(y)
    }

    pub fn add(&mut self, g: &mut Graph, label: &str, a: Node, b: Node) -> Result<Node> {
        let id = add(g, label, self.id(a), self.id(b), Activation::None)?;
        let requires = self.nodes[a.0].requires || self.nodes[b.0].requires;
        let y = self.node(id, self.shape(a), requires);
        self.ops.push(Op::Add { a, b, y });
        Ok(y)
    }

    /// Adds `d` to the gradient of `n` (a loss's gradient with respect to a head, or an op's input gradient).
    pub fn seed(&mut self, g: &mut Graph, n: Node, d: TensorId) -> Result<()> {
        if !self.nodes[n.0].requires {
            return Ok(());
        }
        let total = match self.nodes[n.0].grad {
            None => d,
            Some(e) => {
                let label = format!("{}.grad_sum", g.info(self.nodes[n.0].id).name);
                add(g, &label, e, d, Activation::None)?
            }
        };
        self.nodes[n.0].grad = Some(total);
        Ok(())
    }

    /// Appends the backward pass: every op in reverse whose output received a gradient. Parameter gradients are
    /// added to the trained layers' gradient buffers (bound as external tensors).
    pub fn backward(&mut self, g: &mut Graph) -> Result<()> {
        let mut relu: HashMap<usize, TensorId> = HashMap::new();
        let mut externals: HashMap<String, ParamGrads> = HashMap::new();
        let ops = std::mem::take(&mut self.ops);
        for op in ops.iter().rev() {
            match *op {
                Op::Conv { layer, x, y, c_off } => {
                    let Some(dy) = self.nodes[y.0].grad else {
                        continue;
                    };
                    let name = &layer.conv.name;
                    let conv = &layer.conv.conv;
                    // The fused ReLU: once per output tensor (a concatenation's writers share it).
                    let dpre = match conv.act {
                        Activation::Relu => match relu.get(&y.0) {
                            Some(&t) => t,
                            None => {
                                let t = relu_grad(g, &format!("{name}.relu_grad"), self.id(y), dy)?;
                                relu.insert(y.0, t);
                                t
                            }
                        },
                        Activation::None => dy,
                        other => {
                            return Err(crate::error::Error::shape(
                                name,
                                format!("training has no backward for activation {other:?}"),
                            ))
                        }
                    };
                    let out = OutGrad {
                        tensor: dpre,
                        channel_offset: c_off,
                    };
                    if let Some(s) = &layer.state {
                        let acc = match externals.get(name) {
                            Some(&p) => p,
                            None => {
                                let p = ParamGrads {
                                    weight: g.external(&s.grad_w)?,
                                    bias: g.external(&s.grad_b)?,
                                };
                                externals.insert(name.clone(), p);
                                p
                            }
                        };
                        conv2d_grad_params(
                            g,
                            &format!("{name}.param_grad"),
                            self.id(x),
                            out,
                            conv,
                            Some(acc),
                        )?;
                    }
                    if self.nodes[x.0].requires {
                        let dx = conv2d_grad_input(
                            g,
                            &format!("{name}.input_grad"),
                            out,
                            conv,
                            self.shape(x),
                        )?;
                        self.seed(g, x, dx)?;
                    }
                }
                Op::Pool {
                    x,
                    y,
                    pool,
                    ref label,
                } => {
                    if let (Some(dy), true) = (self.nodes[y.0].grad, self.nodes[x.0].requires) {
                        let dx = max_pool_grad(g, &format!("{label}.grad"), self.id(x), dy, &pool)?;
                        self.seed(g, x, dx)?;
                    }
                }
                Op::Up { x, y, ref label } => {
                    if let (Some(dy), true) = (self.nodes[y.0].grad, self.nodes[x.0].requires) {
                        let dx =
                            upsample_bilinear_grad(g, &format!("{label}.grad"), dy, self.shape(x))?;
                        self.seed(g, x, dx)?;
                    }
                }
                Op::Add { a, b, y } => {
                    if let Some(dy) = self.nodes[y.0].grad {
                        self.seed(g, a, dy)?;
                        self.seed(g, b, dy)?;
                    }
                }
            }
        }
        Ok(())
    }
}
