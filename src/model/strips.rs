//! Running the high-resolution front of a network in row strips, so that no feature map exceeds one storage binding.
//!
//! A chain of convs and pools is run on horizontal bands of its final output. Each band's rows are traced back through
//! the chain (output row r of a layer reads input rows r·s − pad_top … r·s − pad_top + k − 1), the input band is copied
//! out of the full input, every layer runs on its band with the padding adjusted so that zero padding appears only at
//! the image's true top and bottom, and the final band is pasted into the full output. Every output value is computed
//! from the same inputs in the same order as without strips, so the result is identical.

use crate::error::{Error, Result};
use crate::gpu::{Graph, TensorId};
use crate::model::blocks::ConvLayer;
use crate::ops::copy_rows::copy_rows;
use crate::ops::max_pool::{max_pool, Pool};

/// One layer of a chain.
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

    /// Output shape for an input shape.
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
    ) -> Result<TensorId> {
        match self {
            ChainLayer::Conv(c) => {
                let mut conv = c.conv.clone();
                if let Some((t, b)) = rows_pad {
                    conv.pad[0] = t;
                    conv.pad[1] = b;
                }
                crate::ops::conv2d::conv2d(g, label, x, &conv, None, None)
            }
            ChainLayer::Pool(_, p) => max_pool(g, label, x, p),
        }
    }
}

/// Input rows [a, b) of every layer (index 0: the chain's input) needed for output rows [a, b) of the last layer.
fn bands(layers: &[ChainLayer], heights: &[usize], out: (usize, usize)) -> Vec<(usize, usize)> {
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

/// Appends `layers` on `x` and returns the last output. When a full feature map of the chain would exceed `limit`
/// bytes, the chain runs in the fewest row strips whose every band fits.
pub fn run_chain(
    g: &mut Graph,
    x: TensorId,
    layers: &[ChainLayer],
    limit: u64,
) -> Result<TensorId> {
    let first = layers
        .first()
        .map(|l| l.label().to_string())
        .unwrap_or_default();
    let mut shapes = vec![g.nchw(&first, x)?];
    for l in layers {
        let next = l.out_shape(*shapes.last().unwrap())?;
        shapes.push(next);
    }
    let dtype = g.dtype(x);
    let bytes = |s: &[usize; 4], rows: usize| (s[0] * s[1] * rows * s[3] * dtype.size()) as u64;
    if shapes[1..].iter().all(|s| bytes(s, s[2]) <= limit) {
        let mut t = x;
        for l in layers {
            t = l.apply(g, l.label(), t, None)?;
        }
        return Ok(t);
    }
    let heights: Vec<usize> = shapes.iter().map(|s| s[2]).collect();
    let h_out = *heights.last().unwrap();
    let fits = |k: usize| {
        let r = h_out.div_ceil(k);
        (0..h_out).step_by(r).all(|a| {
            let bs = bands(layers, &heights, (a, (a + r).min(h_out)));
            bs.iter()
                .zip(&shapes)
                .all(|(&(lo, hi), s)| bytes(s, hi - lo) <= limit)
        })
    };
    let k = (1..=h_out).find(|&k| fits(k)).unwrap_or(h_out);
    let r = h_out.div_ceil(k);
    let strips = h_out.div_ceil(r);
    let last = layers.last().map(|l| l.label()).unwrap_or("chain");
    let out = g.tensor_as(last, shapes.last().unwrap(), dtype)?;
    for (j, a) in (0..h_out).step_by(r).enumerate() {
        let tag = format!("[strip {}/{strips}]", j + 1);
        let bs = bands(layers, &heights, (a, (a + r).min(h_out)));
        let (lo, hi) = bs[0];
        let mut s0 = shapes[0];
        s0[2] = hi - lo;
        let mut t = g.tensor_as(&format!("{first}.input{tag}"), &s0, dtype)?;
        copy_rows(g, &format!("{first}.slice{tag}"), x, lo, t, 0, hi - lo)?;
        for (l, layer) in layers.iter().enumerate() {
            let (k_rows, s, pt) = layer.rows();
            let ((ia, ib), (oa, ob)) = (bs[l], bs[l + 1]);
            // Zero padding only where the band touches the map's true border.
            let top = pt + ia - oa * s;
            let bottom = ((ob - oa - 1) * s + k_rows).saturating_sub(ib - ia + top);
            let pad = matches!(layer, ChainLayer::Conv(_)).then_some((top, bottom));
            if matches!(layer, ChainLayer::Pool(..)) && pt != 0 {
                return Err(Error::shape(
                    layer.label(),
                    "row strips support pools without padding only",
                ));
            }
            t = layer.apply(g, &format!("{}{tag}", layer.label()), t, pad)?;
            let got = g.shape(t)[2];
            if got != ob - oa {
                return Err(Error::shape(
                    layer.label(),
                    format!(
                        "strip {tag} produced {got} rows, expected {} (rows {oa}..{ob})",
                        ob - oa
                    ),
                ));
            }
        }
        let (oa, ob) = bs[layers.len()];
        copy_rows(g, &format!("{last}.paste{tag}"), t, 0, out, oa, ob - oa)?;
    }
    Ok(out)
}
