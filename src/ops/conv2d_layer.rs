//! A convolution layer of [`conv2d`](crate::ops::conv2d): its weights, geometry and activation, with the
//! output-shape rule and the checks that name the layer when the weights do not fit the input.

use crate::error::{Error, Result};
use crate::gpu::Weight;
use crate::ops::Activation;

/// A convolution layer: its weights and geometry.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[C_out, C_in / groups, KH, KW]` (OIHW)
    pub weight: Weight,
    /// `[C_out]`
    pub bias: Option<Weight>,
    /// (y, x)
    pub stride: [usize; 2],
    /// (top, bottom, left, right); may be asymmetric, e.g. TF's SAME at stride 2 is (0, 1, 0, 1).
    pub pad: [usize; 4],
    /// (y, x)
    pub dilation: [usize; 2],
    /// 1, C_in (depthwise) or any divisor of C_in and C_out.
    pub groups: usize,
    pub act: Activation,
}

impl Conv2d {
    /// Stride 1, dilation 1, groups 1, no activation, and "same" padding: (k−1)/2 before and k/2 after
    /// (k/2 on both sides for odd k). A weight that is not 4-D is reported by [`conv2d`](crate::ops::conv2d::conv2d).
    pub fn new(weight: Weight, bias: Option<Weight>) -> Self {
        let (kh, kw) = match weight.shape.as_slice() {
            [_, _, kh, kw] => (*kh, *kw),
            _ => (1, 1),
        };
        let pad = [
            kh.saturating_sub(1) / 2,
            kh / 2,
            kw.saturating_sub(1) / 2,
            kw / 2,
        ];
        Conv2d {
            weight,
            bias,
            stride: [1, 1],
            pad,
            dilation: [1, 1],
            groups: 1,
            act: Activation::None,
        }
    }
    pub fn with_stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }
    pub fn with_pad(mut self, pad: [usize; 4]) -> Self {
        self.pad = pad;
        self
    }
    /// Sets the dilation and keeps the output the input's size at stride 1 (pad dil·(k−1) split
    /// as in [`Conv2d::new`]); call [`Conv2d::with_pad`] afterwards for other padding.
    pub fn with_dilation(mut self, dilation: [usize; 2]) -> Self {
        self.dilation = dilation;
        if let [_, _, kh, kw] = self.weight.shape[..] {
            let (th, tw) = (
                dilation[0] * kh.max(1).saturating_sub(1),
                dilation[1] * kw.max(1).saturating_sub(1),
            );
            self.pad = [th / 2, th - th / 2, tw / 2, tw - tw / 2];
        }
        self
    }
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    pub fn with_act(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }

    /// Output [N, C_out, Ho, Wo] for input [N, C_in, H, W]; Ho = (H + top + bottom − dil·(KH−1) − 1)/stride + 1 (floor).
    /// Checks the weight, bias, groups, stride and dilation against the input; errors name `label`.
    pub fn out_shape(&self, label: &str, input: [usize; 4]) -> Result<[usize; 4]> {
        let [n, c_in, h, w] = input;
        let ws = &self.weight.shape;
        let [c_out, cin_g, kh, kw] = <[usize; 4]>::try_from(ws.as_slice()).map_err(|_| {
            Error::shape(
                label,
                format!(
                    "weight '{}' must be [C_out, C_in/groups, KH, KW], found {ws:?}",
                    self.weight.name
                ),
            )
        })?;
        if ws.contains(&0) {
            return Err(Error::shape(
                label,
                format!("weight '{}' has a zero dimension: {ws:?}", self.weight.name),
            ));
        }
        let g = self.groups;
        if g == 0 || c_in % g != 0 || c_out % g != 0 {
            return Err(Error::shape(
                label,
                format!("groups {g} must divide C_in {c_in} (input {input:?}) and C_out {c_out} (weight {ws:?})"),
            ));
        }
        if cin_g * g != c_in {
            return Err(Error::shape(
                label,
                format!(
                    "input {input:?} has C_in {c_in}, weight '{}' {ws:?} expects C_in/groups·groups = {cin_g}·{g} = {}",
                    self.weight.name,
                    cin_g * g
                ),
            ));
        }
        if let Some(b) = &self.bias {
            if b.shape.iter().product::<usize>() != c_out || b.shape.len() != 1 {
                return Err(Error::shape(
                    label,
                    format!(
                        "bias '{}' has shape {:?}, expected [{c_out}] (C_out of weight {ws:?})",
                        b.name, b.shape
                    ),
                ));
            }
        }
        if self.stride.contains(&0) || self.dilation.contains(&0) {
            return Err(Error::shape(
                label,
                format!(
                    "stride {:?} and dilation {:?} must be at least 1",
                    self.stride, self.dilation
                ),
            ));
        }
        let [pt, pb, pl, pr] = self.pad;
        let span_y = self.dilation[0] * (kh - 1) + 1;
        let span_x = self.dilation[1] * (kw - 1) + 1;
        let (ph, pw) = (h + pt + pb, w + pl + pr);
        if span_y > ph || span_x > pw {
            return Err(Error::shape(
                label,
                format!(
                    "kernel {kh}x{kw} (dilation {:?}, extent {span_y}x{span_x}) is larger than the padded input {ph}x{pw} \
                     (input {input:?}, pad {:?}): the output would be empty",
                    self.dilation, self.pad
                ),
            ));
        }
        Ok([
            n,
            c_out,
            (ph - span_y) / self.stride[0] + 1,
            (pw - span_x) / self.stride[1] + 1,
        ])
    }
}
