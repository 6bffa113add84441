//! Just enough of a TensorFlow GraphDef reader for the converter: nodes (name, op, inputs,
//! attrs), Const tensors of DT_FLOAT, and following Identity chains both ways.
//! Field numbers: retinaface-mnv2 spec §10 (tensorflow/core/framework/*.proto).

use std::collections::HashMap;

use super::protobuf::{Field, Reader, WireError};

pub(crate) struct Node<'a> {
    pub(crate) name: &'a str,
    pub(crate) op: &'a str,
    pub(crate) inputs: Vec<&'a str>,
    /// (key, AttrValue message field)
    attrs: Vec<(&'a str, Field<'a>)>,
}

pub(crate) struct Graph<'a> {
    pub(crate) nodes: Vec<Node<'a>>,
    by_name: HashMap<&'a str, usize>,
    consumers: HashMap<&'a str, Vec<usize>>,
}

/// `"node:1"` and `"^node"` → `"node"`.
pub(crate) fn base_name(input: &str) -> &str {
    let s = input.strip_prefix('^').unwrap_or(input);
    s.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(s, |(n, _)| n)
}

impl<'a> Graph<'a> {
    pub(crate) fn parse(pb: &'a [u8]) -> std::result::Result<Self, WireError> {
        let mut nodes = Vec::new();
        for f in Reader::new(pb) {
            let f = f?;
            if f.number != 1 {
                continue; // versions, library
            }
            let mut n = Node {
                name: "",
                op: "",
                inputs: Vec::new(),
                attrs: Vec::new(),
            };
            for nf in f.message()? {
                let nf = nf?;
                match nf.number {
                    1 => n.name = nf.str()?,
                    2 => n.op = nf.str()?,
                    3 => n.inputs.push(nf.str()?),
                    5 => {
                        let (mut key, mut value) = ("", None);
                        for ef in nf.message()? {
                            let ef = ef?;
                            match ef.number {
                                1 => key = ef.str()?,
                                2 => value = Some(ef),
                                _ => {}
                            }
                        }
                        if let Some(v) = value {
                            n.attrs.push((key, v));
                        }
                    }
                    _ => {}
                }
            }
            nodes.push(n);
        }
        let mut by_name = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            by_name.insert(n.name, i);
            for inp in n.inputs.iter().filter(|s| !s.starts_with('^')) {
                consumers.entry(base_name(inp)).or_default().push(i);
            }
        }
        Ok(Graph {
            nodes,
            by_name,
            consumers,
        })
    }

    pub(crate) fn node(&self, name: &str) -> Option<&Node<'a>> {
        self.by_name.get(name).map(|&i| &self.nodes[i])
    }

    /// The Const behind input `i` of `n` (through Identity nodes): (shape, values).
    pub(crate) fn const_input(
        &self,
        n: &Node,
        i: usize,
        layer: &str,
    ) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
        let mut cur = *n
            .inputs
            .get(i)
            .ok_or_else(|| format!("layer {layer}: node {} has no input {i}", n.name))?;
        for _ in 0..64 {
            let name = base_name(cur);
            let c = self.node(name).ok_or_else(|| {
                format!(
                    "layer {layer}: graph has no node {name} (input {i} of {})",
                    n.name
                )
            })?;
            match c.op {
                "Identity" => {
                    cur = c.inputs.first().ok_or_else(|| {
                        format!("layer {layer}: Identity node {name} has no input")
                    })?
                }
                "Const" => {
                    let v = c.attr("value").ok_or_else(|| {
                        format!("layer {layer}: Const node {name} has no value attribute")
                    })?;
                    return tensor_f32(v).map_err(|m| format!("layer {layer}: Const node {name}: {m}"));
                }
                op => {
                    return Err(format!(
                        "layer {layer}: input {i} of {} leads to node {name} ({op}), expected a Const (through Identity)",
                        n.name
                    ))
                }
            }
        }
        Err(format!(
            "layer {layer}: Identity chain from {} is too long (cycle?)",
            n.name
        ))
    }

    /// The BatchNorm or BiasAdd node that consumes `conv` (looking through Identity nodes).
    pub(crate) fn consumer(
        &self,
        conv: &Node,
        layer: &str,
    ) -> std::result::Result<&Node<'a>, String> {
        let mut cur = conv.name;
        for _ in 0..64 {
            let users: Vec<&Node> = self
                .consumers
                .get(cur)
                .map(|v| v.iter().map(|&i| &self.nodes[i]).collect())
                .unwrap_or_default();
            match users.as_slice() {
                [u] if u.op == "Identity" => cur = u.name,
                [u] if u.op == "BiasAdd" || u.op.starts_with("FusedBatchNorm") => return Ok(u),
                _ => {
                    let list: Vec<String> = users
                        .iter()
                        .map(|u| format!("{} ({})", u.name, u.op))
                        .collect();
                    return Err(format!(
                        "layer {layer}: {} must feed exactly one FusedBatchNorm or BiasAdd node, found [{}]",
                        conv.name,
                        list.join(", ")
                    ));
                }
            }
        }
        Err(format!(
            "layer {layer}: Identity chain after {} is too long",
            conv.name
        ))
    }
}

impl Node<'_> {
    pub(crate) fn attr(&self, key: &str) -> Option<Field<'_>> {
        self.attrs.iter().find(|(k, _)| *k == key).map(|(_, f)| *f)
    }

    /// AttrValue.f (field 4).
    pub(crate) fn attr_f32(&self, key: &str) -> std::result::Result<Option<f32>, WireError> {
        let Some(a) = self.attr(key) else {
            return Ok(None);
        };
        for f in a.message()? {
            let f = f?;
            if f.number == 4 {
                return Ok(Some(f.f32()?));
            }
        }
        Ok(None)
    }

    /// AttrValue.b (field 5).
    pub(crate) fn attr_bool(&self, key: &str) -> std::result::Result<Option<bool>, WireError> {
        let Some(a) = self.attr(key) else {
            return Ok(None);
        };
        for f in a.message()? {
            let f = f?;
            if f.number == 5 {
                return Ok(Some(f.varint()? != 0));
            }
        }
        Ok(None)
    }
}

/// The most values one Const may hold: a `float_val` of one value broadcasts to the whole shape, so a few bytes
/// could otherwise ask for any allocation.
pub(crate) const MAX_CONST_VALUES: usize = 1 << 26;

/// Decodes AttrValue.tensor (field 8): a DT_FLOAT TensorProto from `tensor_content` or
/// `float_val` (one value broadcast to the whole shape).
pub(crate) fn tensor_f32(attr: Field) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    let w = |e: WireError| e.to_string();
    let mut tensor = None;
    for f in attr.message().map_err(w)? {
        let f = f.map_err(w)?;
        if f.number == 8 {
            tensor = Some(f);
        }
    }
    let tensor = tensor.ok_or("value attribute holds no tensor")?;
    let (mut dtype, mut shape, mut content, mut vals) = (0, Vec::new(), None, Vec::new());
    for f in tensor.message().map_err(w)? {
        let f = f.map_err(w)?;
        match f.number {
            1 => dtype = f.varint().map_err(w)?,
            2 => {
                for d in f.message().map_err(w)? {
                    let d = d.map_err(w)?;
                    if d.number != 2 {
                        continue;
                    }
                    for s in d.message().map_err(w)? {
                        let s = s.map_err(w)?;
                        if s.number == 1 {
                            let v = s.varint().map_err(w)? as i64;
                            shape.push(
                                usize::try_from(v)
                                    .map_err(|_| format!("dimension {v} is negative"))?,
                            );
                        }
                    }
                }
            }
            4 => content = Some(f.bytes().map_err(w)?),
            5 => f.push_f32s(&mut vals).map_err(w)?,
            _ => {}
        }
    }
    if dtype != 1 {
        return Err(format!("dtype {dtype}, expected 1 (DT_FLOAT)"));
    }
    // The shape is untrusted: its element count sizes the allocation below only once it is known to be sane.
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_CONST_VALUES)
        .ok_or_else(|| {
            format!("shape {shape:?} has more than {MAX_CONST_VALUES} values, far more than any weight of a face detector")
        })?;
    match content {
        Some(b) if !b.is_empty() => {
            if b.len() != 4 * n {
                return Err(format!(
                    "tensor_content has {} bytes, shape {shape:?} needs {}",
                    b.len(),
                    4 * n
                ));
            }
            let v = b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Ok((shape, v))
        }
        _ if vals.len() == n => Ok((shape, vals)),
        _ if vals.len() == 1 => Ok((shape, vec![vals[0]; n])),
        _ => Err(format!(
            "float_val has {} values, shape {shape:?} needs {n}",
            vals.len()
        )),
    }
}
