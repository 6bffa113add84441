//! Stages of convs and pools run in row strips: a chain of layers (an inverted-residual block, a VGG stage), or
//! several chains that write one output at channel offsets (SSH's detection module and its concat).
//!
//! A stage runs on horizontal bands of its output. Each band's rows are traced back through every chain (output
//! row r of a layer reads input rows r·s − pad_top … r·s − pad_top + k − 1), the input band is gathered from the
//! input map's pieces, every layer runs on its band with the padding adjusted so that zero padding appears only at
//! the map's true top and bottom, and the band becomes one piece of the output map. Every output value is computed
//! from the same inputs in the same order as without strips, so the result is identical.

use crate::error::{Error, Result};
use crate::gpu::{Graph, TensorId};
use crate::model::blocks::ConvLayer;
use crate::model::strips::map::{band_bytes, plan_bands, Assembler, Map, Need};
use crate::ops::max_pool::{max_pool, Pool};

/// One layer of a chain.
#[derive(Clone)]
pub enum ChainLayer<'a> {
    Conv(&'a ConvLayer),
    /// A pool without padding (Caffe's k2 s2 ceil-mode pools).
    Pool(&'a str, Pool),
}

impl ChainLayer<'_> {
    fn label(&self) -> &str {
        match self {
            ChainLayer::Conv(c) => &c.name,
            ChainLayer::Pool(l, _) => l,
        }
    }

    /// (kernel rows, row stride, top padding).
    fn rows(&self) -> (usize, usize, usize) {
        match self {
            ChainLayer::Conv(c) => {
                let kh = c.conv.weight.shape[2];
                (
                    (kh - 1) * c.conv.dilation[0] + 1,
                    c.conv.stride[0],
                    c.conv.pad[0],
                )
            }
            ChainLayer::Pool(_, p) => (p.kernel[0], p.stride[0], p.pad[0]),
        }
    }

    fn out_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        match self {
            ChainLayer::Conv(c) => c.conv.out_shape(&c.name, input),
            ChainLayer::Pool(l, p) => {
                let [h, w] = p.output_hw(l, [input[2], input[3]])?;
                Ok([input[0], input[1], h, w])
            }
        }
    }

    /// Appends the layer on `x`; `rows_pad` replaces the conv's (top, bottom) padding.
    fn apply(
        &self,
        g: &mut Graph,
        label: &str,
        x: TensorId,
        rows_pad: Option<(usize, usize)>,
        residual: Option<TensorId>,
        into: Option<(TensorId, usize)>,
    ) -> Result<TensorId> {
        match self {
            ChainLayer::Conv(c) => {
                let mut conv = c.conv.clone();
                if let Some((t, b)) = rows_pad {
                    conv.pad[0] = t;
                    conv.pad[1] = b;
                }
                crate::ops::conv2d::conv2d(g, label, x, &conv, residual, into)
            }
            ChainLayer::Pool(l, p) if residual.is_none() && into.is_none() => {
                if rows_pad.is_some() && p.pad[0] != 0 {
                    return Err(Error::shape(
                        *l,
                        "row strips support pools without padding only",
                    ));
                }
                max_pool(g, label, x, p)
            }
            ChainLayer::Pool(l, _) => Err(Error::shape(
                *l,
                "a pool cannot take a residual or write at a channel offset",
            )),
        }
    }

    fn same(&self, o: &ChainLayer) -> bool {
        match (self, o) {
            (ChainLayer::Conv(a), ChainLayer::Conv(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }
}

/// A chain of layers whose last output fills channels `c_off..` of the stage's output.
#[derive(Clone)]
pub struct Branch<'a> {
    pub layers: Vec<ChainLayer<'a>>,
    pub c_off: usize,
}

/// Layers run on one input map: one branch (a chain), or several writing one output at channel offsets.
pub struct Stage<'a> {
    /// Name of the output map when several branches share it (SSH: `ssh0.output`); a chain's output is named
    /// after its last layer.
    pub name: String,
    pub branches: Vec<Branch<'a>>,
    /// Added to the single branch's output in its last conv (an inverted-residual block); same shape as it.
    pub residual: Option<&'a Map>,
}

impl<'a> Stage<'a> {
    /// A chain of `layers` with an optional residual.
    pub fn chain(layers: Vec<ChainLayer<'a>>, residual: Option<&'a Map>) -> Self {
        let name = layers
            .last()
            .map(|l| l.label().to_string())
            .unwrap_or_default();
        Stage {
            name,
            branches: vec![Branch { layers, c_off: 0 }],
            residual,
        }
    }
}

/// Input rows [a, b) of every layer (index 0: the chain's input) needed for output rows [a, b) of the last layer.
fn trace(layers: &[ChainLayer], heights: &[usize], out: (usize, usize)) -> Vec<(usize, usize)> {
    let mut v = vec![(0, 0); layers.len() + 1];
    v[layers.len()] = out;
    for l in (0..layers.len()).rev() {
        let (k, s, pt) = layers[l].rows();
        let (a, b) = v[l + 1];
        let lo = (a * s).saturating_sub(pt);
        let hi = ((b - 1) * s + k).saturating_sub(pt).min(heights[l]);
        v[l] = (lo, hi);
    }
    v
}

/// Appends the stage on `x`. When every full map of the stage fits `limit` bytes (and `x` is one tensor) the layers
/// run as they are; otherwise in the fewest row strips whose every band fits, and the output is held in pieces.
/// A chain whose thinnest strip still does not fit runs layer by layer.
pub fn run_stage(g: &mut Graph, stage: &Stage, x: &Map, limit: u64) -> Result<Map> {
    let elem = g.dtype(x.pieces[0].1).size();
    let mut shapes = Vec::new();
    for b in &stage.branches {
        let mut s = vec![x.shape];
        for l in &b.layers {
            s.push(l.out_shape(*s.last().unwrap())?);
        }
        shapes.push(s);
    }
    let last = |k: usize| *shapes[k].last().unwrap();
    let [n, _, h, w] = last(0);
    let c_total = (0..stage.branches.len())
        .map(|k| stage.branches[k].c_off + last(k)[1])
        .max()
        .unwrap_or(0);
    if let Some(k) = (0..shapes.len()).find(|&k| [last(k)[2], last(k)[3]] != [h, w]) {
        return Err(Error::shape(
            &stage.name,
            format!(
                "branch {k} ends at {:?}, branch 0 at {:?}",
                last(k),
                last(0)
            ),
        ));
    }
    let out_shape = [n, c_total, h, w];
    let fits = |s: &[usize; 4]| band_bytes(*s, s[2], elem) <= limit;
    let whole = x.single().is_some()
        && stage.residual.is_none_or(|r| r.single().is_some())
        && shapes.iter().flatten().skip(1).all(fits)
        && fits(&out_shape);
    if whole {
        return run_whole(g, stage, x, out_shape);
    }
    let need = |a: usize, b: usize| -> Need {
        let mut worst: Need = (0, String::new(), [0; 4]);
        let mut see = |name: &str, s: [usize; 4], (lo, hi): (usize, usize)| {
            let bytes = band_bytes(s, hi - lo, elem);
            if bytes > worst.0 {
                worst = (bytes, name.to_string(), [s[0], s[1], hi - lo, s[3]]);
            }
        };
        for (k, br) in stage.branches.iter().enumerate() {
            let heights: Vec<usize> = shapes[k].iter().map(|s| s[2]).collect();
            let bs = trace(&br.layers, &heights, (a, b));
            see(&x.name, x.shape, bs[0]);
            for (l, layer) in br.layers.iter().enumerate() {
                see(layer.label(), shapes[k][l + 1], bs[l + 1]);
            }
        }
        see(&stage.name, out_shape, (a, b));
        worst
    };
    // Layers that keep rows (1×1 convs: the heads) follow the input's pieces, so that maps of one input line up.
    let keeps_rows = stage
        .branches
        .iter()
        .all(|b| b.layers.iter().all(|l| l.rows() == (1, 1, 0)));
    let along: Vec<(usize, usize)> = (0..x.pieces.len()).map(|k| x.piece_rows(g, k)).collect();
    let planned =
        if keeps_rows && along.len() > 1 && along.iter().all(|&(a, b)| need(a, b).0 <= limit) {
            Ok(along.clone())
        } else {
            plan_bands(h, 1, limit, need)
        };
    let bands = match planned {
        Ok(b) => b,
        Err(e @ Error::TooLarge { .. }) => {
            let layers = &stage.branches[0].layers;
            if stage.branches.len() > 1 || layers.len() < 2 {
                return Err(e);
            }
            let mut t = x.clone();
            for (i, l) in layers.iter().enumerate() {
                let res = stage.residual.filter(|_| i + 1 == layers.len());
                t = run_stage(g, &Stage::chain(vec![l.clone()], res), &t, limit)?;
            }
            return Ok(t);
        }
        Err(e) => return Err(e),
    };
    let strips = bands.len();
    // Strips that follow the input's pieces stay as they are, so that maps of one input keep lining up.
    let follows = bands.len() > 1 && bands == along;
    let group_limit = if follows { 0 } else { limit };
    let mut pieces = Assembler::new(&stage.name, out_shape, elem, &bands, group_limit);
    for (j, &(oa, ob)) in bands.iter().enumerate() {
        let tag = format!("[strip {}/{strips}]", j + 1);
        let single = stage.branches.len() == 1;
        let band = if single {
            None
        } else {
            Some(g.tensor_as(
                &format!("{}{tag}", stage.name),
                &[n, c_total, ob - oa, w],
                g.dtype(x.pieces[0].1),
            )?)
        };
        let mut piece = None;
        for (k, br) in stage.branches.iter().enumerate() {
            let heights: Vec<usize> = shapes[k].iter().map(|s| s[2]).collect();
            let bs = trace(&br.layers, &heights, (oa, ob));
            let first = br.layers.first().map(|l| l.label()).unwrap_or("chain");
            let (lo, hi) = bs[0];
            let mut t = x.window(g, &format!("{first}.input{tag}"), lo, hi)?;
            for (l, layer) in br.layers.iter().enumerate() {
                let (k_rows, s, pt) = layer.rows();
                let ((ia, ib), (la, lb)) = (bs[l], bs[l + 1]);
                // Zero padding only where the band touches the map's true border.
                let top = pt + ia - la * s;
                let bottom = ((lb - la - 1) * s + k_rows).saturating_sub(ib - ia + top);
                let end = l + 1 == br.layers.len();
                let residual = match stage.residual {
                    Some(r) if end => {
                        Some(r.window(g, &format!("{}.residual{tag}", r.name), oa, ob)?)
                    }
                    _ => None,
                };
                let into = band.filter(|_| end).map(|b| (b, br.c_off));
                let pad = matches!(layer, ChainLayer::Conv(_)).then_some((top, bottom));
                let label = format!("{}{tag}", layer.label());
                t = layer.apply(g, &label, t, pad, residual, into)?;
                let got = g.shape(t)[2];
                if got != lb - la {
                    return Err(Error::shape(
                        layer.label(),
                        format!(
                            "strip {tag} produced {got} rows, expected {} (rows {la}..{lb})",
                            lb - la
                        ),
                    ));
                }
            }
            piece = Some(t);
        }
        pieces.add(g, j, band.or(piece).expect("a stage has a branch"))?;
    }
    pieces.finish(g)
}

/// The stage without strips: a chain layer after layer, branches into one output (shared leading layers once).
fn run_whole(g: &mut Graph, stage: &Stage, x: &Map, out_shape: [usize; 4]) -> Result<Map> {
    let x = x.single().expect("checked by the caller");
    let residual = stage.residual.and_then(|r| r.single());
    let out = match stage.branches.len() {
        1 => None,
        _ => Some(g.tensor_as(&stage.name, &out_shape, g.dtype(x))?),
    };
    // (branch, layer index) → output, so that a layer a later branch shares runs once.
    let mut done: Vec<(&ChainLayer, TensorId, TensorId)> = Vec::new();
    let mut last = x;
    for br in &stage.branches {
        let mut t = x;
        for (l, layer) in br.layers.iter().enumerate() {
            let end = l + 1 == br.layers.len();
            if !end {
                if let Some(&(_, _, o)) = done.iter().find(|(d, i, _)| d.same(layer) && *i == t) {
                    t = o;
                    continue;
                }
            }
            let into = out.filter(|_| end).map(|o| (o, br.c_off));
            let res = residual.filter(|_| end);
            let o = layer.apply(g, layer.label(), t, None, res, into)?;
            done.push((layer, t, o));
            t = o;
        }
        last = t;
    }
    Map::whole(g, out.unwrap_or(last))
}
