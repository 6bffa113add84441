//! Per-model detection graphs: preprocessing → network → softmax → decode → selection/NMS, for one group of
//! images that share an input size. The detector compiles all groups of a call into one plan.

use crate::detector::NamedTensor;
use crate::error::Result;
use crate::gpu::{Graph, TensorId};
use crate::model::retinaface_mnv2::{self as rf, RetinaFaceMnv2};
use crate::model::ssh_vgg16::{self as vgg, SshVgg16};
use crate::model::strips::io;
use crate::ops::decode::{BoxCoding, DecodeImage};
use crate::ops::nms::{select_chunks, Segment, SelectConfig};
use crate::ops::preprocess::{resized_size, Preprocess};
use crate::ops::softmax2::ClassLayout;

/// Upper bound on candidates above the score threshold per image that enter NMS (its bit matrix is K²/8 bytes).
pub const MAX_CANDIDATES: usize = 16_384;

/// How a tensor read for `--dump` is laid out for the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpLayout {
    /// A retinaface-mnv2 head of level l with k values per anchor: flattened to rows (y, x, a).
    RetinaHead { level: usize, k: usize },
    /// [1, C, H, W] stored as [C, H, W].
    Chw,
    /// Face probabilities [1, A, H, W] stored as [H, W, A].
    Hwa,
}

#[derive(Clone, Debug)]
pub struct DumpTensor {
    pub name: String,
    pub id: TensorId,
    pub layout: DumpLayout,
}

/// The inputs and outputs of one group inside a compiled plan.
pub struct GroupIo {
    /// (index into the caller's image list, its packed-RGB8 input: one tensor, or row bands of the image when
    /// larger than a binding)
    pub images: Vec<(usize, io::Packed)>,
    /// Kept rows [N, capacity, 16] and counts [N, 2] (kept, overflow).
    pub rows: TensorId,
    pub counts: TensorId,
    pub capacity: usize,
    pub dumps: Vec<DumpTensor>,
}

/// Thresholds of the final selection.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub score: f32,
    pub nms: f32,
}

/// ssh-vgg16 test protocols (docs/spec/ssh-vgg16.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Protocol {
    /// Shortest side 1200, longest at most 1600 (the paper's single-scale result; the default).
    #[default]
    SingleScale,
    /// One fixed resize factor.
    Scale(f64),
    /// Levels base·{0.625, 1, 1.5, 2} with base from (800, 1200); M3 skipped on the largest level.
    Pyramid,
}

impl Protocol {
    /// Resize factors for an image of `hw`.
    pub fn scales(self, hw: [usize; 2]) -> Vec<f64> {
        match self {
            Protocol::SingleScale => vec![vgg::scale_for(hw, 1200.0, 1600.0)],
            Protocol::Scale(s) => vec![s],
            Protocol::Pyramid => vgg::pyramid_scales(hw).to_vec(),
        }
    }
}

/// Declares one packed-RGB8 input per image: one tensor when it fits `limit` bytes, else none yet (preprocessing
/// declares the row bands each strip of the canvas reads, see [`io::preprocess_map`]).
fn inputs(
    g: &mut Graph,
    idxs: &[usize],
    sizes: &[[usize; 2]],
    limit: u64,
) -> Result<Vec<(usize, io::Packed)>> {
    idxs.iter()
        .map(|&i| {
            let [h, w] = sizes[i];
            let words = (h * w * 3).div_ceil(4);
            let whole = match words as u64 * 4 <= limit {
                true => vec![(0, g.input(&format!("image{i}.rgb8"), &[words])?)],
                false => Vec::new(),
            };
            Ok((i, whole))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn finish(
    g: &mut Graph,
    images: Vec<(usize, io::Packed)>,
    chunks: &[(usize, TensorId)],
    segments: &[Segment],
    th: Thresholds,
    plus_one: bool,
    capacity: usize,
    dumps: Vec<DumpTensor>,
) -> Result<GroupIo> {
    let cfg = SelectConfig {
        score_threshold: th.score,
        iou_threshold: th.nms,
        plus_one,
        max_candidates: capacity,
    };
    let sel = select_chunks(g, "nms", chunks, segments, &cfg)?;
    g.mark_output(sel.rows);
    g.mark_output(sel.counts);
    for d in &dumps {
        g.mark_output(d.id);
    }
    Ok(GroupIo {
        images,
        rows: sel.rows,
        counts: sel.counts,
        capacity,
        dumps,
    })
}

/// One group of images of one detect call: those sharing the network input size.
pub struct GroupSpec<'a> {
    /// Index of the group, for tensor names.
    pub k: usize,
    /// retinaface-mnv2: the padded size; ssh-vgg16: the original size (hence equal scales).
    pub hw: [usize; 2],
    /// Indices into `sizes` of the group's images.
    pub idxs: &'a [usize],
    /// [H, W] of every image of the call.
    pub sizes: &'a [[usize; 2]],
    pub th: Thresholds,
    /// Mark the `--dump` tensors of the group's first image as outputs.
    pub dump: bool,
    /// Largest feature map in bytes before the high-resolution layers run in row strips.
    pub limit: u64,
}

/// retinaface-mnv2 on a group that shares the padded size.
pub fn retina_group(net: &RetinaFaceMnv2, g: &mut Graph, spec: &GroupSpec) -> Result<GroupIo> {
    let GroupSpec {
        k,
        hw: padded,
        idxs,
        sizes,
        th,
        dump,
        limit,
    } = *spec;
    let n = idxs.len();
    let shape = [n, 3, padded[0], padded[1]];
    let x = io::canvas(g, &format!("input{k}"), shape, g.map_dtype(), limit)?;
    let mut images = inputs(g, idxs, sizes, limit)?;
    for (j, (i, rgb)) in images.iter_mut().enumerate() {
        let pre = Preprocess::retinaface(sizes[*i]);
        let name = format!("image{i}.rgb8");
        io::preprocess_map(g, &format!("preprocess.image{i}"), &name, rgb, &x, j, &pre)?;
    }
    let heads = net.forward(g, &x, limit)?;
    let count = |s: usize| 2 * padded[0].div_ceil(s) * padded[1].div_ceil(s);
    let total: usize = rf::LEVELS.iter().map(|(s, _)| count(*s)).sum();
    let (rows, mut chunks) = io::rows_tensor(g, k, n, total, limit)?;
    let geo = vec![
        DecodeImage {
            input_hw: padded,
            scale: 1.0
        };
        n
    ];
    let (mut segments, mut off, mut dumps) = (Vec::new(), 0, Vec::new());
    for (l, (stride, anchor_sizes)) in rf::LEVELS.iter().enumerate() {
        let h = &heads[l];
        let maps = io::HeadMaps {
            class: &h.class,
            layout: ClassLayout::Interleaved,
            bbox: &h.bbox,
            landmarks: Some(&h.landmark),
            stride: *stride,
            anchor_sizes: anchor_sizes.to_vec(),
            module: l as u32,
        };
        let coding = BoxCoding::Ssd {
            variances: [0.1, 0.2],
        };
        let softmax = format!("head.class.{l}.softmax");
        let label = format!("decode.{l}");
        let out = io::RowsOut {
            rows,
            offset: off,
            limit,
        };
        let (_, made) = io::decode_map(g, &softmax, &label, &maps, &coding, &geo, &out)?;
        chunks.extend(made);
        segments.push(Segment {
            offset: off,
            len: count(*stride),
            top_k: None,
        });
        off += count(*stride);
        if dump {
            for (name, m, kk) in [
                ("cls_logits", &h.class, 2),
                ("bbox", &h.bbox, 4),
                ("landm", &h.landmark, 10),
            ] {
                dumps.push(DumpTensor {
                    name: name.into(),
                    id: m.joined(g)?,
                    layout: DumpLayout::RetinaHead { level: l, k: kk },
                });
            }
        }
    }
    finish(
        g,
        images,
        &chunks,
        &segments,
        th,
        false,
        total.min(MAX_CANDIDATES),
        dumps,
    )
}

/// ssh-vgg16 on a group that shares the original size (hence the same scales).
pub fn vgg_group(
    net: &SshVgg16,
    g: &mut Graph,
    spec: &GroupSpec,
    protocol: Protocol,
) -> Result<GroupIo> {
    let GroupSpec {
        k,
        hw,
        idxs,
        sizes,
        th,
        dump,
        limit,
    } = *spec;
    let n = idxs.len();
    let mut images = inputs(g, idxs, sizes, limit)?;
    let scales = protocol.scales(hw);
    // Rows of every (level, module), in that order, then one selection over all of them.
    let mut plan = Vec::new();
    let mut total = 0;
    for (li, &s) in scales.iter().enumerate() {
        let r = resized_size(hw, s)?;
        let mut mods = Vec::new();
        for (m, (stride, _)) in vgg::MODULES.iter().enumerate() {
            // Each Caffe ceil-mode pool halves with ceil: stride 8 → 3 pools, 16 → 4, 32 → 5.
            let pools = stride.trailing_zeros();
            let (h, w) = (
                (0..pools).fold(r[0], |a, _| a.div_ceil(2)),
                (0..pools).fold(r[1], |a, _| a.div_ceil(2)),
            );
            let skip = protocol == Protocol::Pyramid && li == scales.len() - 1 && m == 2;
            if !skip {
                mods.push((m, total, 2 * h * w));
                total += 2 * h * w;
            }
        }
        plan.push((s, r, mods));
    }
    let (rows, mut chunks) = io::rows_tensor(g, k, n, total, limit)?;
    let (mut segments, mut dumps) = (Vec::new(), Vec::new());
    for (li, (s, r, mods)) in plan.iter().enumerate() {
        let shape = [n, 3, r[0], r[1]];
        let x = io::canvas(
            g,
            &format!("input{k}.level{li}"),
            shape,
            g.map_dtype(),
            limit,
        )?;
        let pre = Preprocess::ssh(hw, *s)?;
        for (j, (i, rgb)) in images.iter_mut().enumerate() {
            let label = format!("preprocess.image{i}.level{li}");
            let name = format!("image{i}.rgb8.level{li}");
            io::preprocess_map(g, &label, &name, rgb, &x, j, &pre)?;
        }
        let mut enabled = [false; 3];
        for &(m, _, _) in mods {
            enabled[m] = true;
        }
        let out = net.forward(g, &x, enabled, limit)?;
        let geo = vec![
            DecodeImage {
                input_hw: *r,
                scale: *s as f32
            };
            n
        ];
        let first = dump && li == 0;
        for &(m, off, len) in mods {
            let Some((cls, bbox)) = &out.heads[m] else {
                continue;
            };
            let mk = format!("m{}", m + 1);
            let (stride, scales_a) = vgg::MODULES[m];
            let maps = io::HeadMaps {
                class: cls,
                layout: ClassLayout::ClassMajor,
                bbox,
                landmarks: None,
                stride,
                anchor_sizes: scales_a.to_vec(),
                module: m as u32,
            };
            let softmax = format!("{mk}.cls_prob");
            let decode = format!("{mk}.decode");
            let coding = BoxCoding::Rcnn;
            let out = io::RowsOut {
                rows,
                offset: off,
                limit,
            };
            let (scores, made) = io::decode_map(g, &softmax, &decode, &maps, &coding, &geo, &out)?;
            chunks.extend(made);
            segments.push(Segment {
                offset: off,
                len,
                top_k: Some(vgg::TOP_K),
            });
            if first {
                dumps.push(DumpTensor {
                    name: format!("{mk}.cls_prob"),
                    id: scores.joined(g)?,
                    layout: DumpLayout::Hwa,
                });
                dumps.push(DumpTensor {
                    name: format!("{mk}.bbox_pred"),
                    id: bbox.joined(g)?,
                    layout: DumpLayout::Chw,
                });
            }
        }
        if first {
            for (name, m) in [
                ("conv4_3", &out.conv4_3),
                ("conv5_3", &out.conv5_3),
                ("conv4_fuse_final", &out.conv4_fuse_final),
                ("pool6", &out.pool6),
            ] {
                dumps.push(DumpTensor {
                    name: name.into(),
                    id: m.joined(g)?,
                    layout: DumpLayout::Chw,
                });
            }
        }
    }
    let capacity = total.min(vgg::TOP_K * segments.len()).min(MAX_CANDIDATES);
    finish(g, images, &chunks, &segments, th, true, capacity, dumps)
}

/// Turns the values read for `dumps` (tensor shapes in `shapes`) into the named tensors of `--dump`; heads of
/// the three retinaface-mnv2 levels are concatenated into one [N, k] tensor per name.
pub fn assemble_dumps(
    dumps: &[DumpTensor],
    shapes: &[Vec<usize>],
    values: Vec<Vec<f32>>,
) -> Vec<NamedTensor> {
    let mut named: Vec<NamedTensor> = Vec::new();
    for ((d, s), v) in dumps.iter().zip(shapes).zip(values) {
        let (c, h, w) = (s[1], s[2], s[3]);
        match d.layout {
            DumpLayout::Chw => named.push((d.name.clone(), s[1..].to_vec(), v)),
            DumpLayout::Hwa => {
                let t = (0..h * w)
                    .flat_map(|p| (0..c).map(move |a| (a, p)))
                    .map(|(a, p)| v[a * h * w + p])
                    .collect();
                named.push((d.name.clone(), vec![h, w, c], t));
            }
            DumpLayout::RetinaHead { k, .. } => {
                // Channel a·k + j of anchor a (A = c / k) becomes row (y, x, a), column j.
                let a_n = c / k;
                let rows = (0..h * w)
                    .flat_map(|p| (0..a_n * k).map(move |ch| (ch, p)))
                    .map(|(ch, p)| v[ch * h * w + p]);
                match named.iter_mut().find(|n| n.0 == d.name) {
                    Some(n) => n.2.extend(rows),
                    None => named.push((d.name.clone(), vec![0, k], rows.collect())),
                }
            }
        }
    }
    for n in named.iter_mut().filter(|n| n.1.len() == 2 && n.1[0] == 0) {
        n.1[0] = n.2.len() / n.1[1];
    }
    named
}
