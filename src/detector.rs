//! The public detector: builder, model choice, plan cache, and the mapping of kept rows to [`Face`]s.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use image::RgbImage;

use crate::error::{Error, Result};
use crate::gpu::plan::{bytes_to_f32, bytes_to_u32};
use crate::gpu::{AdapterOptions, GpuContext, Graph, Plan, TensorId};
use crate::model::retinaface_mnv2::{self as rf, RetinaFaceMnv2};
use crate::model::weights::WeightFile;
use crate::ops::decode::{decode, BoxCoding, DecodeImage, Level};
use crate::ops::nms::{select, Segment, SelectConfig};
use crate::ops::preprocess::{pack_rgb8, preprocess, Preprocess};
use crate::ops::softmax2::{softmax2, ClassLayout};

/// The bundled retinaface-mnv2 weights (see weights/README.md for provenance and licence).
pub static BUNDLED_RETINAFACE: &[u8] = include_bytes!("../weights/retinaface_mnv2.safetensors");

/// Which network to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Model {
    /// RetinaFace-MobileNetV2 with SSH context modules and 5 landmarks; weights bundled. The default.
    #[default]
    RetinafaceMnv2,
    /// The paper's SSH VGG-16 network; weights converted from the authors' Caffe model.
    SshVgg16,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::RetinafaceMnv2 => "retinaface-mnv2",
            Model::SshVgg16 => "ssh-vgg16",
        }
    }
    /// Default (score threshold, NMS IoU threshold).
    pub fn default_thresholds(self) -> (f32, f32) {
        match self {
            Model::RetinafaceMnv2 => (0.5, 0.4),
            Model::SshVgg16 => (0.5, 0.3),
        }
    }
}

impl std::str::FromStr for Model {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "retinaface-mnv2" => Ok(Model::RetinafaceMnv2),
            "ssh-vgg16" => Ok(Model::SshVgg16),
            _ => Err(Error::Config(format!(
                "unknown model '{s}': expected retinaface-mnv2 or ssh-vgg16"
            ))),
        }
    }
}

/// One detected face in original-image pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    /// [x1, y1, x2, y2]
    pub bbox: [f32; 4],
    /// Face probability.
    pub score: f32,
    /// Image-left eye, image-right eye, nose, image-left and image-right mouth corner (retinaface-mnv2 only).
    pub landmarks: Option<[[f32; 2]; 5]>,
}

/// Raw per-anchor outputs of one image, in the layout of the golden `*.heads.safetensors` files.
#[derive(Clone, Debug)]
pub struct HeadsDump {
    /// [N, 2] (background, face) logits.
    pub cls_logits: Vec<f32>,
    /// [N, 4] box deltas.
    pub bbox: Vec<f32>,
    /// [N, 10] landmark deltas.
    pub landm: Vec<f32>,
    /// [N, 4] priors (cx, cy, w, h), normalised by the padded size.
    pub priors: Vec<f32>,
    pub num_anchors: usize,
}

/// Configures and builds a [`Detector`].
#[derive(Default)]
pub struct DetectorBuilder {
    model: Model,
    weights: Option<PathBuf>,
    score: Option<f32>,
    nms: Option<f32>,
    adapter: AdapterOptions,
    context: Option<Arc<GpuContext>>,
}

impl DetectorBuilder {
    pub fn model(mut self, m: Model) -> Self {
        self.model = m;
        self
    }
    /// A safetensors weight file instead of the bundled weights.
    pub fn weights(mut self, path: impl Into<PathBuf>) -> Self {
        self.weights = Some(path.into());
        self
    }
    /// Keep detections with score > t.
    pub fn score_threshold(mut self, t: f32) -> Self {
        self.score = Some(t);
        self
    }
    /// Suppress a detection whose IoU with a better one is > t.
    pub fn nms_threshold(mut self, t: f32) -> Self {
        self.nms = Some(t);
        self
    }
    /// Adapter choice (backend, name); by default `WGPU_BACKEND` / `WGPU_ADAPTER_NAME` or the best adapter.
    pub fn adapter(mut self, a: AdapterOptions) -> Self {
        self.adapter = a;
        self
    }
    /// Shares an existing GPU context (device) between detectors.
    pub fn context(mut self, ctx: Arc<GpuContext>) -> Self {
        self.context = Some(ctx);
        self
    }

    pub fn build(self) -> Result<Detector> {
        let (ds, dn) = self.model.default_thresholds();
        let score = self.score.unwrap_or(ds);
        let nms = self.nms.unwrap_or(dn);
        if !(0.0..=1.0).contains(&score) {
            return Err(Error::Config(format!(
                "score threshold {score} must be in [0, 1]"
            )));
        }
        if !(0.0..=1.0).contains(&nms) {
            return Err(Error::Config(format!(
                "NMS IoU threshold {nms} must be in [0, 1]"
            )));
        }
        let ctx = match self.context {
            Some(c) => c,
            None => Arc::new(GpuContext::new(&self.adapter)?),
        };
        let wf = match (&self.weights, self.model) {
            (Some(p), _) => WeightFile::open(p)?,
            (None, Model::RetinafaceMnv2) => WeightFile::from_bytes("bundled retinaface_mnv2.safetensors", BUNDLED_RETINAFACE)?,
            (None, Model::SshVgg16) => {
                return Err(Error::Config(
                    "ssh-vgg16 has no bundled weights: convert the authors' model with `sshface convert --from caffe` and pass --weights".into(),
                ))
            }
        };
        let net = match self.model {
            Model::RetinafaceMnv2 => Net::Retina(RetinaFaceMnv2::load(&ctx, &wf)?),
            Model::SshVgg16 => {
                return Err(Error::Config("ssh-vgg16 is not implemented yet".into()))
            }
        };
        Ok(Detector {
            ctx,
            model: self.model,
            net,
            score,
            nms,
            plans: Mutex::new(Vec::new()),
        })
    }
}

enum Net {
    Retina(RetinaFaceMnv2),
}

/// Inputs and outputs of one group of same-size images inside a compiled plan.
struct GroupIo {
    /// (index into the caller's image list, packed-RGB input tensor)
    images: Vec<(usize, TensorId)>,
    rows: TensorId,
    counts: TensorId,
    capacity: usize,
    heads: Option<Vec<[TensorId; 3]>>,
}

struct Compiled {
    key: (Vec<[usize; 2]>, bool),
    /// Held from writing the inputs to reading the outputs, so threads sharing the plan do not interleave.
    lock: Mutex<()>,
    plan: Plan,
    groups: Vec<GroupIo>,
}

/// Plans kept per distinct list of image sizes (video frames reuse one; archives of mixed sizes cycle).
const PLAN_CACHE: usize = 4;
/// Upper bound on candidates above the score threshold per image that enter NMS (its bit matrix is K²/8 bytes).
const MAX_CANDIDATES: usize = 16_384;

/// A face detector bound to one GPU device. `Send + Sync`: share it between threads (calls are serialised).
pub struct Detector {
    ctx: Arc<GpuContext>,
    model: Model,
    net: Net,
    score: f32,
    nms: f32,
    plans: Mutex<Vec<Arc<Compiled>>>,
}

impl Detector {
    pub fn builder() -> DetectorBuilder {
        DetectorBuilder::default()
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    pub fn model(&self) -> Model {
        self.model
    }

    /// Detects faces in one image.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Face>> {
        Ok(self
            .detect_batch(std::slice::from_ref(image))?
            .pop()
            .unwrap_or_default())
    }

    /// Detects faces in several images with one GPU submit. Images of equal padded size run as one batch;
    /// images of different sizes run side by side in the same plan, so each gets exactly its single-image result.
    pub fn detect_batch(&self, images: &[RgbImage]) -> Result<Vec<Vec<Face>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.compiled(images, false)?;
        let _guard = c.lock.lock().unwrap();
        self.write_inputs(&c, images)?;
        let mut read = Vec::new();
        for gr in &c.groups {
            read.push(gr.rows);
            read.push(gr.counts);
        }
        let out = c.plan.run(&self.ctx, &read)?;
        let mut faces = vec![Vec::new(); images.len()];
        for (k, gr) in c.groups.iter().enumerate() {
            let rows = bytes_to_f32(&out[2 * k]);
            let counts = bytes_to_u32(&out[2 * k + 1]);
            for (j, &(idx, _)) in gr.images.iter().enumerate() {
                let count = counts[2 * j] as usize;
                let base = j * gr.capacity * 16;
                faces[idx] = (0..count.min(gr.capacity))
                    .map(|r| row_to_face(&rows[base + r * 16..base + r * 16 + 16], self.model))
                    .collect();
            }
        }
        Ok(faces)
    }

    /// Raw per-anchor head outputs of `image` (the `--dump` of the CLI).
    pub fn dump_heads(&self, image: &RgbImage) -> Result<HeadsDump> {
        let c = self.compiled(std::slice::from_ref(image), true)?;
        let _guard = c.lock.lock().unwrap();
        self.write_inputs(&c, std::slice::from_ref(image))?;
        let gr = &c.groups[0];
        let heads = gr.heads.as_ref().expect("dump plan has heads");
        let ids: Vec<TensorId> = heads.iter().flatten().copied().collect();
        let out = c.plan.run(&self.ctx, &ids)?;
        let (h, w) = (image.height() as usize, image.width() as usize);
        let [hp, wp] = rf::padded_size([h, w]);
        let mut d = HeadsDump {
            cls_logits: vec![],
            bbox: vec![],
            landm: vec![],
            priors: vec![],
            num_anchors: 0,
        };
        for (l, &(stride, _)) in rf::LEVELS.iter().enumerate() {
            let (fh, fw) = (hp.div_ceil(stride), wp.div_ceil(stride));
            for (k, dst) in [&mut d.cls_logits, &mut d.bbox, &mut d.landm]
                .into_iter()
                .enumerate()
            {
                let t = bytes_to_f32(&out[l * 3 + k]);
                nchw_to_rows(&t, 2 * [2, 4, 10][k], fh, fw, dst);
            }
        }
        d.priors = crate::model::anchors::ssd_priors([hp, wp], &rf::LEVELS)
            .into_iter()
            .flatten()
            .collect();
        d.num_anchors = d.priors.len() / 4;
        Ok(d)
    }

    /// GPU time of every step of the plan for `image` (needs TIMESTAMP_QUERY_INSIDE_PASSES).
    pub fn profile(&self, image: &RgbImage) -> Result<Vec<crate::gpu::StepTiming>> {
        let c = self.compiled(std::slice::from_ref(image), false)?;
        let _guard = c.lock.lock().unwrap();
        self.write_inputs(&c, std::slice::from_ref(image))?;
        c.plan.profile(&self.ctx)
    }

    fn write_inputs(&self, c: &Compiled, images: &[RgbImage]) -> Result<()> {
        for gr in &c.groups {
            for &(idx, t) in &gr.images {
                c.plan
                    .write(&self.ctx, t, &pack_rgb8(images[idx].as_raw()))?;
            }
        }
        Ok(())
    }

    fn compiled(&self, images: &[RgbImage], dump: bool) -> Result<Arc<Compiled>> {
        let sizes: Vec<[usize; 2]> = images
            .iter()
            .map(|i| [i.height() as usize, i.width() as usize])
            .collect();
        for (i, s) in sizes.iter().enumerate() {
            if s[0] == 0 || s[1] == 0 {
                return Err(Error::Empty {
                    name: format!("image {i}"),
                    shape: vec![s[0], s[1], 3],
                });
            }
        }
        let key = (sizes, dump);
        let mut cache = self.plans.lock().unwrap();
        if let Some(pos) = cache.iter().position(|c| c.key == key) {
            let c = cache.remove(pos);
            cache.push(c.clone());
            return Ok(c);
        }
        let c = Arc::new(self.build_plan(key)?);
        if cache.len() >= PLAN_CACHE {
            cache.remove(0);
        }
        cache.push(c.clone());
        Ok(c)
    }

    fn build_plan(&self, key: (Vec<[usize; 2]>, bool)) -> Result<Compiled> {
        let Net::Retina(net) = &self.net;
        let (sizes, dump) = &key;
        let mut g = Graph::new();
        // Group images by padded size, keeping first-appearance order.
        let mut groups: Vec<([usize; 2], Vec<usize>)> = Vec::new();
        for (i, &s) in sizes.iter().enumerate() {
            let p = rf::padded_size(s);
            match groups.iter_mut().find(|(q, _)| *q == p) {
                Some((_, v)) => v.push(i),
                None => groups.push((p, vec![i])),
            }
        }
        let mut ios = Vec::new();
        for (k, (padded, idxs)) in groups.iter().enumerate() {
            let n = idxs.len();
            let x = g.tensor(&format!("input{k}"), &[n, 3, padded[0], padded[1]])?;
            let mut images = Vec::new();
            for (j, &idx) in idxs.iter().enumerate() {
                let [h, w] = sizes[idx];
                let rgb = g.input(&format!("image{idx}.rgb8"), &[(h * w * 3).div_ceil(4)])?;
                let p = Preprocess {
                    src_hw: [h, w],
                    scale: 1.0,
                    resized_hw: [h, w],
                    bgr: false,
                    mean: [127.5; 3],
                    scale_mul: [1.0 / 127.5; 3],
                    pad_value: -1.0,
                };
                preprocess(&mut g, &format!("preprocess.image{idx}"), rgb, x, j, &p)?;
                images.push((idx, rgb));
            }
            let heads = net.forward(&mut g, x)?;
            let total: usize = rf::LEVELS
                .iter()
                .map(|(s, _)| 2 * padded[0].div_ceil(*s) * padded[1].div_ceil(*s))
                .sum();
            let rows = g.tensor(&format!("rows{k}"), &[n, total, 16])?;
            let geo: Vec<DecodeImage> = (0..n)
                .map(|_| DecodeImage {
                    input_hw: *padded,
                    scale: 1.0,
                })
                .collect();
            let mut segments = Vec::new();
            let mut off = 0;
            for (l, (stride, sizes)) in rf::LEVELS.iter().enumerate() {
                let scores = softmax2(
                    &mut g,
                    &format!("head.class.{l}.softmax"),
                    heads[l].class,
                    ClassLayout::Interleaved,
                )?;
                let level = Level {
                    scores,
                    bbox: heads[l].bbox,
                    landmarks: Some(heads[l].landmark),
                    stride: *stride,
                    anchor_sizes: sizes.to_vec(),
                    module: l as u32,
                };
                decode(
                    &mut g,
                    &format!("decode.{l}"),
                    &level,
                    &BoxCoding::Ssd {
                        variances: [0.1, 0.2],
                    },
                    &geo,
                    rows,
                    off,
                )?;
                let len = 2 * padded[0].div_ceil(*stride) * padded[1].div_ceil(*stride);
                segments.push(Segment {
                    offset: off,
                    len,
                    top_k: None,
                });
                off += len;
            }
            let capacity = total.min(MAX_CANDIDATES);
            let cfg = SelectConfig {
                score_threshold: self.score,
                iou_threshold: self.nms,
                plus_one: false,
                max_candidates: capacity,
            };
            let sel = select(&mut g, "nms", rows, &segments, &cfg)?;
            g.mark_output(sel.rows);
            g.mark_output(sel.counts);
            let heads = if *dump {
                let hs: Vec<[TensorId; 3]> = heads
                    .iter()
                    .map(|h| [h.class, h.bbox, h.landmark])
                    .collect();
                for t in hs.iter().flatten() {
                    g.mark_output(*t);
                }
                Some(hs)
            } else {
                None
            };
            ios.push(GroupIo {
                images,
                rows: sel.rows,
                counts: sel.counts,
                capacity,
                heads,
            });
        }
        let plan = g.compile(&self.ctx)?;
        Ok(Compiled {
            key,
            lock: Mutex::new(()),
            plan,
            groups: ios,
        })
    }
}

fn row_to_face(r: &[f32], model: Model) -> Face {
    let landmarks = (model == Model::RetinafaceMnv2)
        .then(|| std::array::from_fn(|k| [r[4 + 2 * k], r[5 + 2 * k]]));
    Face {
        bbox: [r[0], r[1], r[2], r[3]],
        score: r[15],
        landmarks,
    }
}

/// Appends the rows (y, x, a) of a head [1, A·k, H, W] whose channel a·k + j holds value j of anchor a.
fn nchw_to_rows(t: &[f32], channels: usize, h: usize, w: usize, dst: &mut Vec<f32>) {
    let k = channels / 2;
    for y in 0..h {
        for x in 0..w {
            for a in 0..2 {
                for j in 0..k {
                    dst.push(t[((a * k + j) * h + y) * w + x]);
                }
            }
        }
    }
}
