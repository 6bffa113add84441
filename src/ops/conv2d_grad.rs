//! Backward of [`conv2d`](crate::ops::conv2d::conv2d) in f32: the input gradient (a transposed convolution)
//! and the weight and bias gradients (reductions over batch and space), as tiled GEMMs in
//! `shaders/conv2d_grad.wgsl`.
//!
//! Shapes: input `[N, C_in, H, W]`, weight `[C_out, C_in / groups, KH, KW]`, output gradient `dy`
//! `[N, C_out, Ho, Wo]` (the forward's output shape for that input). The activation fused into the forward
//! conv is not part of this op: mask `dy` first (see [`relu_grad`](crate::ops::relu_grad)).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{dispatch_1d, DType, Graph, StepDesc, TensorId};
use crate::ops::conv2d::Conv2d;
use crate::ops::Shader;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub c_in: u32,
    pub h: u32,
    pub w: u32,
    pub c_out: u32,
    pub ho: u32,
    pub wo: u32,
    pub kh: u32,
    pub kw: u32,
    pub sy: u32,
    pub sx: u32,
    pub pt: u32,
    pub pl: u32,
    pub dy: u32,
    pub dx: u32,
    pub cin_g: u32,
    pub cout_g: u32,
    /// `cin_g · kh · kw`: the forward GEMM depth, the weight gradient's columns (plus one for the bias).
    pub k_fwd: u32,
    /// Output pixels per split of the weight gradient's reduction.
    pub chunk: u32,
    /// 64-channel tiles per group.
    pub m_tiles: u32,
    pub splits: u32,
    /// Channels of the output-gradient tensor and the offset of this conv's C_out among them.
    pub dy_c: u32,
    pub dy_off: u32,
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<Params>() == 96);

pub static SHADER: Shader = crate::shader!("conv2d_grad", Params);

/// Channels and pixels per GEMM tile of the shader.
const TILE: usize = 64;
/// Pixel tiles per row of the input-gradient dispatch before the rest wraps into z.
const MAX_TILES_X: usize = 4096;
/// Output pixels a weight-gradient split reduces at least (a multiple of the shader's TK = 16).
pub const SPLIT_PIXELS: usize = 1024;
/// At most this many splits, and at most [`MAX_PARTIAL_FLOATS`] partial sums in all.
pub const MAX_SPLITS: usize = 64;
pub const MAX_PARTIAL_FLOATS: usize = 1 << 22;

/// How many splits the weight gradient's reduction over `pixels` (N·Ho·Wo) output pixels uses for a
/// `c_out × (k_fwd + 1)` gradient: enough for parallel work on large maps, bounded in memory.
pub fn weight_grad_splits(pixels: usize, c_out: usize, k_fwd: usize) -> usize {
    let by_memory = (MAX_PARTIAL_FLOATS / (c_out * (k_fwd + 1)).max(1)).max(1);
    pixels
        .div_ceil(SPLIT_PIXELS)
        .clamp(1, MAX_SPLITS.min(by_memory))
}

/// The output gradient a backward conv reads: with `channel_offset = Some(c)`, channels `c..c + C_out` of
/// `tensor` `[N, C, Ho, Wo]` (the forward conv wrote `into` a concatenation at channel c); with `None` (what a
/// plain `TensorId` converts to) the whole tensor, which must then be exactly `[N, C_out, Ho, Wo]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutGrad {
    pub tensor: TensorId,
    pub channel_offset: Option<usize>,
}

impl From<TensorId> for OutGrad {
    fn from(tensor: TensorId) -> Self {
        OutGrad {
            tensor,
            channel_offset: None,
        }
    }
}

/// Checks an f32 conv whose forward input has shape `input` against `dy`; returns the Params (splits unset).
fn geometry(
    g: &Graph,
    label: &str,
    input: [usize; 4],
    dy: OutGrad,
    conv: &Conv2d,
) -> Result<Params> {
    let oshape = conv.out_shape(label, input)?;
    let [n, c_out, ho, wo] = oshape;
    let (off, ds) = (dy.channel_offset.unwrap_or(0), g.shape(dy.tensor));
    let fits = ds.len() == 4 && ds[0] == n && ds[2] == ho && ds[3] == wo && off + c_out <= ds[1];
    if !fits || (dy.channel_offset.is_none() && ds != oshape.as_slice()) {
        return Err(Error::shape(
            label,
            format!(
                "output gradient '{}' has shape {ds:?}, expected {} (the conv's output {oshape:?} for input {input:?}{})",
                g.info(dy.tensor).name,
                match dy.channel_offset {
                    Some(_) => format!("[{n}, ≥{}, {ho}, {wo}]", off + c_out),
                    None => format!("{oshape:?}"),
                },
                match dy.channel_offset {
                    Some(_) => format!(" at channels {off}..{}", off + c_out),
                    None => String::new(),
                }
            ),
        ));
    }
    let dy_c = ds[1];
    let dy = dy.tensor;
    if g.dtype(dy) != DType::F32 || conv.weight.dtype != DType::F32 {
        return Err(Error::shape(
            label,
            format!(
                "the backward pass is f32: output gradient '{}' is {:?}, weight '{}' is {:?}",
                g.info(dy).name,
                g.dtype(dy),
                conv.weight.name,
                conv.weight.dtype
            ),
        ));
    }
    let [_, c_in, h, w] = input;
    let [_, cin_g, kh, kw] =
        <[usize; 4]>::try_from(conv.weight.shape.as_slice()).expect("checked by out_shape");
    let u = |v: usize| v as u32;
    Ok(Params {
        n: u(n),
        c_in: u(c_in),
        h: u(h),
        w: u(w),
        c_out: u(c_out),
        ho: u(ho),
        wo: u(wo),
        kh: u(kh),
        kw: u(kw),
        sy: u(conv.stride[0]),
        sx: u(conv.stride[1]),
        pt: u(conv.pad[0]),
        pl: u(conv.pad[2]),
        dy: u(conv.dilation[0]),
        dx: u(conv.dilation[1]),
        cin_g: u(cin_g),
        cout_g: u(c_out / conv.groups),
        k_fwd: u(cin_g * kh * kw),
        dy_c: u(dy_c),
        dy_off: u(off),
        ..Params::default()
    })
}

/// `n` as a dispatch dimension, or an error naming `label` when it exceeds 65,535 workgroups.
fn check_dispatch(label: &str, what: &str, n: usize) -> Result<u32> {
    if n > 65_535 {
        return Err(Error::shape(
            label,
            format!("{what} needs {n} workgroups in one dimension, more than 65,535"),
        ));
    }
    Ok(n as u32)
}

/// Input gradient `dx` `[N, C_in, H, W]` of the conv whose forward input had shape `input`, from its output
/// gradient `dy` `[N, C_out, Ho, Wo]` (or a channel slice of a larger tensor, see [`OutGrad`]): `dx[n, c, iy, ix] = Σ w[co, c', ky, kx] · dy[n, co, oy, ox]` over the
/// `co` of `c`'s group and every `(ky, kx)` with `oy·sy = iy + top − ky·dy`, `ox·sx = ix + left − kx·dx`
/// in range. Input pixels no window reaches (bottom/right padding cut by the stride) get 0.
pub fn conv2d_grad_input(
    g: &mut Graph,
    label: &str,
    dy: impl Into<OutGrad>,
    conv: &Conv2d,
    input: [usize; 4],
) -> Result<TensorId> {
    let dy = dy.into();
    let mut params = geometry(g, label, input, dy, conv)?;
    let m_tiles = (params.cin_g as usize).div_ceil(TILE);
    params.m_tiles = m_tiles as u32;
    let out = g.tensor(label, &input)?;
    let [n, c_in, h, w] = input;
    let tiles = (n * h * w).div_ceil(TILE);
    let z = tiles.div_ceil(MAX_TILES_X);
    let y = check_dispatch(label, "the input gradient", conv.groups * m_tiles)?;
    let k = params.cout_g as usize * (params.kh * params.kw) as usize;
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "conv2d_grad",
        constants: vec![],
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![dy.tensor.into(), (&conv.weight).into(), out.into()],
        workgroups: [tiles.div_ceil(z) as u32, y, z as u32],
        flops: crate::gpu::graph::mac_flops(&[n, c_in, h, w, k]),
    });
    Ok(out)
}

/// Gradients of a conv's parameters: `weight` `[C_out, C_in / groups, KH, KW]`, `bias` `[C_out]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamGrads {
    pub weight: TensorId,
    pub bias: TensorId,
}

/// Weight and bias gradients of the conv from its forward input `x` `[N, C_in, H, W]` and output gradient
/// `dy` (a tensor or a channel slice, see [`OutGrad`]): `dw[co, c', ky, kx] = Σ_{n, oy, ox} dy[n, co, oy, ox] · x[n, g·C_in/groups + c', oy·sy + ky·dy − top,
/// ox·sx + kx·dx − left]` (0 outside the input) and `db[co] = Σ_{n, oy, ox} dy[n, co, oy, ox]`, summed over
/// [`weight_grad_splits`] partial GEMMs in a fixed order. With `accumulate = Some(grads)` the gradients are
/// added to those tensors (gradient accumulation; make them inputs or outputs of the graph so that their
/// buffers are not shared and keep their values between runs) and they are returned; otherwise new tensors are.
/// The bias gradient is computed whether or not the conv has a bias.
pub fn conv2d_grad_params(
    g: &mut Graph,
    label: &str,
    x: TensorId,
    dy: impl Into<OutGrad>,
    conv: &Conv2d,
    accumulate: Option<ParamGrads>,
) -> Result<ParamGrads> {
    let dy = dy.into();
    let input = g.nchw(label, x)?;
    let mut params = geometry(g, label, input, dy, conv)?;
    if g.dtype(x) != DType::F32 {
        return Err(Error::shape(
            label,
            format!(
                "the backward pass is f32: input '{}' is {:?}",
                g.info(x).name,
                g.dtype(x)
            ),
        ));
    }
    let (c_out, k_fwd) = (params.c_out as usize, params.k_fwd as usize);
    let wshape = conv.weight.shape.clone();
    let grads = match accumulate {
        Some(a) => {
            for (t, want) in [(a.weight, wshape.as_slice()), (a.bias, &[c_out][..])] {
                if g.shape(t) != want || g.dtype(t) != DType::F32 {
                    return Err(Error::shape(
                        label,
                        format!(
                            "gradient accumulator '{}' is {:?} {:?}, expected F32 {want:?}",
                            g.info(t).name,
                            g.dtype(t),
                            g.shape(t)
                        ),
                    ));
                }
            }
            a
        }
        None => ParamGrads {
            weight: g.tensor(&format!("{label}.weight.grad"), &wshape)?,
            bias: g.tensor(&format!("{label}.bias.grad"), &[c_out])?,
        },
    };
    let pixels = params.n as usize * (params.ho * params.wo) as usize;
    let splits = weight_grad_splits(pixels, c_out, k_fwd);
    let chunk = pixels.div_ceil(splits).next_multiple_of(16);
    let splits = pixels.div_ceil(chunk);
    let m_tiles = (params.cout_g as usize).div_ceil(TILE);
    params.m_tiles = m_tiles as u32;
    params.chunk = chunk as u32;
    params.splits = splits as u32;
    let part = g.tensor(
        &format!("{label}.grad_partial"),
        &[splits, c_out, k_fwd + 1],
    )?;
    let y = check_dispatch(label, "the weight gradient", conv.groups * m_tiles)?;
    let x_tiles = check_dispatch(label, "the weight gradient", (k_fwd + 1).div_ceil(TILE))?;
    let bytes = bytemuck::bytes_of(&params).to_vec();
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "conv2d_grad_weight",
        constants: vec![],
        params: bytes.clone(),
        bindings: vec![x.into(), dy.tensor.into(), part.into()],
        workgroups: [x_tiles, y, splits as u32],
        flops: crate::gpu::graph::mac_flops(&[pixels, c_out, k_fwd + 1]),
    });
    g.push(StepDesc {
        label: label.to_string(),
        shader: &SHADER,
        entry: "conv2d_grad_weight_sum",
        constants: vec![("ACCUM", accumulate.is_some() as u32 as f64)],
        params: bytes,
        bindings: vec![part.into(), grads.weight.into(), grads.bias.into()],
        workgroups: dispatch_1d(c_out * (k_fwd + 1), 256),
        flops: (splits * c_out * (k_fwd + 1)) as u64,
    });
    Ok(grads)
}
