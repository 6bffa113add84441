//! The public detector: builder, model choice, plan cache, and the mapping of kept rows to [`Face`]s.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use image::RgbImage;

use crate::error::{Error, Result};
use crate::gpu::plan::{bytes_to_f32, bytes_to_u32};
use crate::gpu::{AdapterOptions, GpuContext, Graph, Numerics, Plan, Precision, TensorId};
pub use crate::model::pipeline::Protocol;
use crate::model::pipeline::{self, GroupIo, Thresholds};
use crate::model::retinaface_mnv2::{self as rf, RetinaFaceMnv2};
use crate::model::ssh_vgg16::SshVgg16;
use crate::model::weights::WeightFile;
pub use crate::ops::blur::{Blur, BlurMode};
use crate::ops::preprocess::pack_rgb8;
use crate::options::{finish_faces, scale_faces, DetectOptions};

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
    /// The name the CLI's `--model` takes, e.g. `retinaface-mnv2`.
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

/// One detected face in original-image pixels (after EXIF orientation when decoded by [`crate::image_io`]).
///
/// With the `serde` feature (on by default) it serialises as one face of the CLI's JSON schema:
/// `{"box": [x1, y1, x2, y2], "score": s, "landmarks": [[x, y]; 5] or null}`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Face {
    /// [x1, y1, x2, y2], clipped to the image unless [`DetectorBuilder::clip_boxes`]`(false)`.
    #[cfg_attr(feature = "serde", serde(rename = "box"))]
    pub bbox: [f32; 4],
    /// Face probability.
    pub score: f32,
    /// Image-left eye, image-right eye, nose, image-left and image-right mouth corner (retinaface-mnv2 only).
    pub landmarks: Option<[[f32; 2]; 5]>,
}

/// A tensor written by `--dump`: name, shape, values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Configures and builds a [`Detector`].
#[derive(Default)]
pub struct DetectorBuilder {
    model: Model,
    weights: Option<PathBuf>,
    score: Option<f32>,
    nms: Option<f32>,
    adapter: AdapterOptions,
    context: Option<Arc<GpuContext>>,
    protocol: Protocol,
    max_binding: Option<u64>,
    precision: Precision,
    raw_boxes: bool,
}

impl DetectorBuilder {
    /// Numeric precision (default [`Precision::Auto`]: the fastest the adapter supports). An explicit
    /// precision the adapter cannot run (f16 without `SHADER_F16`, f16-coop without cooperative matrices)
    /// makes [`build`](Self::build) fail with an error naming the adapter.
    pub fn precision(mut self, p: Precision) -> Self {
        self.precision = p;
        self
    }
    /// The network (default [`Model::RetinafaceMnv2`]).
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
    /// Plan as if one storage binding held at most `bytes` (never more than the device allows): high-resolution
    /// layers then run in row strips and batches split earlier. Lowers peak memory; results are identical.
    pub fn max_binding(mut self, bytes: u64) -> Self {
        self.max_binding = Some(bytes);
        self
    }
    /// Input size: for ssh-vgg16 its test protocol (single scale 1200/1600 by default, a fixed scale, or the
    /// pyramid); for retinaface-mnv2 the default runs each image at its own size and [`Protocol::Scale`]`(s)`
    /// resizes it by `s` first (e.g. 2 for tiny faces), while [`Protocol::Pyramid`] is an error. Coordinates are
    /// always in original pixels.
    pub fn protocol(mut self, p: Protocol) -> Self {
        self.protocol = p;
        self
    }
    /// Shares an existing GPU context (device) between detectors.
    pub fn context(mut self, ctx: Arc<GpuContext>) -> Self {
        self.context = Some(ctx);
        self
    }

    /// Boxes clipped to the image (the default) or raw (`false`): retinaface-mnv2's decoded boxes may reach past
    /// the image edges (e.g. `x1 = -3.8` for a face cut by the border); ssh-vgg16 clips on the GPU as the authors'
    /// code does, so its boxes are inside the image either way. Landmarks are never clipped.
    pub fn clip_boxes(mut self, clip: bool) -> Self {
        self.raw_boxes = !clip;
        self
    }

    /// Opens the adapter (unless [`context`](Self::context) gave one), loads the weights and uploads them.
    ///
    /// # Errors
    /// [`Error::Config`] for a threshold outside [0, 1], a scale that is not a positive number, a protocol the model
    /// does not have (the pyramid for retinaface-mnv2), `max_binding(0)`, or ssh-vgg16 without weights;
    /// [`Error::NoAdapter`] / [`Error::Device`] when no adapter matches or it refuses a device; an explicit
    /// [`Precision`] the adapter cannot run; [`Error::Weights`] / [`Error::Io`] for a missing, unreadable or
    /// mis-shaped weight file.
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
        if let Protocol::Scale(s) = self.protocol {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::Config(format!(
                    "--scale {s} must be a positive number"
                )));
            }
        }
        if self.model == Model::RetinafaceMnv2 && self.protocol == Protocol::Pyramid {
            return Err(Error::Config(
                "the pyramid protocol (--pyramid) applies to --model ssh-vgg16 only".into(),
            ));
        }
        if self.max_binding == Some(0) {
            return Err(Error::Config(
                "max_binding(0): the binding budget must be at least 1 byte".into(),
            ));
        }
        let ctx = match self.context {
            Some(c) => c,
            None => Arc::new(GpuContext::new(&self.adapter)?),
        };
        let numerics = Numerics::resolve(self.precision, &ctx)?;
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
            Model::RetinafaceMnv2 => {
                Net::Retina(Box::new(RetinaFaceMnv2::load(&ctx, &wf, numerics.maps)?))
            }
            Model::SshVgg16 => Net::Vgg(Box::new(SshVgg16::load(&ctx, &wf, numerics.maps)?)),
        };
        let limit = self
            .max_binding
            .map_or(ctx.max_binding(), |b| b.min(ctx.max_binding()));
        Ok(Detector {
            ctx,
            model: self.model,
            net,
            th: Thresholds { score, nms },
            protocol: self.protocol,
            numerics,
            limit,
            raw_boxes: self.raw_boxes,
            plans: Mutex::new(Vec::new()),
            truncated: AtomicU64::new(0),
            compiled: AtomicU64::new(0),
        })
    }
}

// One per detector: boxing the larger network would save nothing worth an indirection.
enum Net {
    Retina(Box<RetinaFaceMnv2>),
    Vgg(Box<SshVgg16>),
}

/// Each image's faces, and the bytes of extra ranges read back with them.
type FacesAndBytes = (Vec<Vec<Face>>, Vec<Vec<u8>>);

/// A plan's key: image sizes, whether it dumps, the (score, NMS) threshold bits it selects with, and the
/// anonymisation (mode, mask scale bits) it appends.
type PlanKey = (Vec<[usize; 2]>, bool, [u32; 2], Option<(BlurMode, u32)>);

struct Compiled {
    key: PlanKey,
    /// Held from writing the inputs to reading the outputs, so threads sharing the plan do not interleave.
    lock: Mutex<()>,
    plan: Plan,
    groups: Vec<GroupIo>,
    /// Per group, the anonymised image of each of its images (empty without anonymisation).
    anonymised: Vec<Vec<TensorId>>,
}

/// Plans kept per distinct list of image sizes (video frames reuse one; archives of mixed sizes cycle).
const PLAN_CACHE: usize = 4;
/// Cached plans beyond the newest are dropped while their arenas together exceed this, so archives of mixed sizes
/// do not pile up GPU memory.
const PLAN_CACHE_BYTES: u64 = 1 << 30;

/// A face detector bound to one GPU device. `Send + Sync`: share it between threads (calls are serialised per plan).
pub struct Detector {
    ctx: Arc<GpuContext>,
    model: Model,
    net: Net,
    th: Thresholds,
    protocol: Protocol,
    numerics: Numerics,
    /// Largest tensor in bytes the plans are built for.
    limit: u64,
    raw_boxes: bool,
    plans: Mutex<Vec<Arc<Compiled>>>,
    truncated: AtomicU64,
    compiled: AtomicU64,
}

impl Detector {
    /// A builder with the defaults: retinaface-mnv2, bundled weights, the model's thresholds, the best adapter.
    pub fn builder() -> DetectorBuilder {
        DetectorBuilder::default()
    }

    /// The GPU context (device, adapter info), e.g. to share it with another detector.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The adapter's name, e.g. `NVIDIA H200` or `llvmpipe (LLVM 19.1.7, 256 bits)`.
    pub fn adapter_name(&self) -> &str {
        &self.ctx.info.name
    }

    /// The backend the adapter runs on (Vulkan, Metal, DX12, GL).
    pub fn backend(&self) -> wgpu::Backend {
        self.ctx.info.backend
    }

    /// The network this detector runs.
    pub fn model(&self) -> Model {
        self.model
    }

    /// The precision that runs (never `Auto`: what `Auto` resolved to on this adapter).
    pub fn precision(&self) -> Precision {
        self.numerics.precision
    }

    /// Feature-map storage and convolution path of this detector.
    pub fn numerics(&self) -> Numerics {
        self.numerics
    }

    /// One line for logs: the adapter, backend, driver and the precision that runs.
    pub fn describe(&self) -> String {
        format!(
            "{}, precision {}",
            self.ctx.describe(),
            self.numerics.describe()
        )
    }

    /// How many images so far had more candidates above the score threshold than NMS takes
    /// ([`MAX_CANDIDATES`](crate::model::pipeline::MAX_CANDIDATES) per image). Their results are the exact greedy-NMS
    /// result of their best-scoring candidates: the faces returned are right, but lower-scoring ones may be missing.
    /// Only a very low score threshold on a large image gets there.
    pub fn truncated_images(&self) -> u64 {
        self.truncated.load(Ordering::Relaxed)
    }

    /// Plans built so far (one per new list of input sizes, or again after the cache dropped it): what size
    /// buckets save on archives of mixed sizes.
    pub fn plans_compiled(&self) -> u64 {
        self.compiled.load(Ordering::Relaxed)
    }

    /// Detects faces in one image, best score first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Face>> {
        self.detect_with(image, &DetectOptions::default())
    }

    /// As [`detect`](Self::detect) with per-call thresholds and a face limit (see [`DetectOptions`]).
    pub fn detect_with(&self, image: &RgbImage, opts: &DetectOptions) -> Result<Vec<Face>> {
        Ok(self
            .detect_batch_with(std::slice::from_ref(image), opts)?
            .pop()
            .unwrap_or_default())
    }

    /// Detects faces in several images with one compute submit (then one small copy of the kept rows). Images of
    /// equal input size run as one batch; images of different sizes run side by side in the same plan, so each gets
    /// exactly its single-image result.
    pub fn detect_batch(&self, images: &[RgbImage]) -> Result<Vec<Vec<Face>>> {
        self.detect_batch_with(images, &DetectOptions::default())
    }

    /// As [`detect_batch`](Self::detect_batch) with per-call options. A score or NMS threshold other than the
    /// builder's builds (and caches) a plan for it; `max_faces` keeps the best-scoring faces.
    pub fn detect_batch_with(
        &self,
        images: &[RgbImage],
        opts: &DetectOptions,
    ) -> Result<Vec<Vec<Face>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let th = opts.thresholds(self.th)?;
        let (scaled, factors) = self.input_scale(images);
        let images = scaled.as_deref().unwrap_or(images);
        let c = self.compiled(images, false, th)?;
        Ok(self.run_rows(&c, images, &factors, opts.max_faces, &[])?.0)
    }

    /// [`detect_batch`](Self::detect_batch) that also returns each image with every face anonymised, computed on
    /// the GPU from the uploaded image and the kept detections in the same submit: the unblurred pixels of a face
    /// never come back.
    pub fn detect_anonymised(
        &self,
        images: &[RgbImage],
        blur: &Blur,
    ) -> Result<Vec<(Vec<Face>, RgbImage)>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        if self.input_scale(&images[..1]).0.is_some() {
            return Err(Error::Config(
                "anonymisation runs on the images as uploaded; it cannot be combined with a retinaface-mnv2 \
                 resize factor (--scale): anonymise at scale 1"
                    .into(),
            ));
        }
        let c = self.compiled_for(images, false, self.th, Some(blur))?;
        let mut extra = Vec::new();
        for (gr, outs) in c.groups.iter().zip(&c.anonymised) {
            for (&(idx, _), &t) in gr.images.iter().zip(outs) {
                extra.push((idx, t));
            }
        }
        let reads: Vec<(TensorId, u64, u64)> = extra
            .iter()
            .map(|&(_, t)| (t, 0, c.plan.info(t).bytes()))
            .collect();
        let ones = vec![[1.0, 1.0]; images.len()];
        let (faces, bytes) = self.run_rows(&c, images, &ones, None, &reads)?;
        let mut imgs = vec![RgbImage::new(0, 0); images.len()];
        for ((idx, _), b) in extra.into_iter().zip(bytes) {
            let hw = [images[idx].height() as usize, images[idx].width() as usize];
            imgs[idx] = crate::model::anonymise::unpack(&b, hw);
        }
        Ok(faces.into_iter().zip(imgs).collect())
    }

    /// Runs the plan on `images` (as the network sees them; `factors`: original pixels per network pixel);
    /// returns each image's faces, best first, at most `max_faces`, and the bytes of the `extra` ranges, read back
    /// with the kept rows.
    fn run_rows(
        &self,
        c: &Compiled,
        images: &[RgbImage],
        factors: &[[f32; 2]],
        max_faces: Option<usize>,
        extra: &[(TensorId, u64, u64)],
    ) -> Result<FacesAndBytes> {
        let _guard = c.lock.lock().unwrap();
        self.write_inputs(c, images)?;
        // Counts first; then only the kept rows of each image come back.
        let read: Vec<TensorId> = c.groups.iter().map(|gr| gr.counts).collect();
        let counts: Vec<Vec<u32>> = c
            .plan
            .run(&self.ctx, &read)?
            .iter()
            .map(|b| bytes_to_u32(b))
            .collect();
        let mut ranges = Vec::new();
        let mut owners = Vec::new();
        for (k, gr) in c.groups.iter().enumerate() {
            for (j, &(idx, _)) in gr.images.iter().enumerate() {
                let kept = (counts[k][2 * j] as usize).min(gr.capacity) as u64;
                if counts[k][2 * j + 1] != 0 {
                    self.truncated.fetch_add(1, Ordering::Relaxed);
                }
                ranges.push((gr.rows, (j * gr.capacity * 64) as u64, kept * 64));
                owners.push(idx);
            }
        }
        let n_rows = ranges.len();
        ranges.extend_from_slice(extra);
        let mut rows = c.plan.read_ranges(&self.ctx, &ranges)?;
        let extra_bytes = rows.split_off(n_rows);
        let mut faces = vec![Vec::new(); images.len()];
        for (idx, bytes) in owners.into_iter().zip(rows) {
            let mut f: Vec<Face> = bytes_to_f32(&bytes)
                .chunks_exact(16)
                .map(|r| row_to_face(r, self.model))
                .collect();
            // NMS emits rows in descending score; keep that order, documented as "best first".
            f.sort_by(|a, b| b.score.total_cmp(&a.score));
            let f = scale_faces(f, factors[idx]);
            let (w, h) = (
                images[idx].width() as f32 * factors[idx][0],
                images[idx].height() as f32 * factors[idx][1],
            );
            faces[idx] = finish_faces(f, (!self.raw_boxes).then_some((w, h)), max_faces);
        }
        Ok((faces, extra_bytes))
    }

    /// The tensors of `--dump` for `image`: for retinaface-mnv2 the raw per-anchor heads in the layout of the golden
    /// `*.heads.safetensors` (`cls_logits [N,2]`, `bbox [N,4]`, `landm [N,10]`, `priors [N,4]`); for ssh-vgg16, at the
    /// first scale, `m{k}.cls_prob [H,W,A]`, `m{k}.bbox_pred [4A,H,W]` and the feature maps `conv4_3`, `conv5_3`,
    /// `conv4_fuse_final`, `pool6` (`[C,H,W]`).
    pub fn dump(&self, image: &RgbImage) -> Result<Vec<NamedTensor>> {
        let c = self.compiled(std::slice::from_ref(image), true, self.th)?;
        let _guard = c.lock.lock().unwrap();
        self.write_inputs(&c, std::slice::from_ref(image))?;
        let gr = &c.groups[0];
        let ids: Vec<TensorId> = gr.dumps.iter().map(|d| d.id).collect();
        let out = c.plan.run_f32(&self.ctx, &ids)?;
        let shapes: Vec<Vec<usize>> = gr
            .dumps
            .iter()
            .map(|d| c.plan.info(d.id).shape.clone())
            .collect();
        let mut named = pipeline::assemble_dumps(&gr.dumps, &shapes, out);
        if self.model == Model::RetinafaceMnv2 {
            let padded = rf::padded_size([image.height() as usize, image.width() as usize]);
            let priors: Vec<f32> = crate::model::anchors::ssd_priors(padded, &rf::LEVELS)
                .into_iter()
                .flatten()
                .collect();
            named.push(("priors".into(), vec![priors.len() / 4, 4], priors));
        }
        Ok(named)
    }

    /// GPU time of every step of the plan for `image` (needs TIMESTAMP_QUERY_INSIDE_PASSES).
    pub fn profile(&self, image: &RgbImage) -> Result<Vec<crate::gpu::StepTiming>> {
        let c = self.compiled(std::slice::from_ref(image), false, self.th)?;
        let _guard = c.lock.lock().unwrap();
        self.write_inputs(&c, std::slice::from_ref(image))?;
        c.plan.profile(&self.ctx)
    }

    /// Bytes of GPU memory that [`detect_batch`](Self::detect_batch) of `images` holds: the plan's arena (feature
    /// maps, inputs, outputs) plus the weight buffers it binds. Builds the plan if it is not cached yet; other
    /// cached plans, pipelines and the small readback buffer are not counted.
    pub fn gpu_memory_bytes(&self, images: &[RgbImage]) -> Result<u64> {
        let (scaled, _) = self.input_scale(images);
        let c = self.compiled(scaled.as_deref().unwrap_or(images), false, self.th)?;
        Ok(c.plan.arena_bytes() + c.plan.weight_bytes())
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

    /// retinaface-mnv2 with [`Protocol::Scale`]: the images resized by the factor on the CPU, and per image the
    /// original pixels per network pixel in x and y; otherwise `None` and factors of 1.
    fn input_scale(&self, images: &[RgbImage]) -> (Option<Vec<RgbImage>>, Vec<[f32; 2]>) {
        let ones = vec![[1.0, 1.0]; images.len()];
        let s = match (&self.net, self.protocol) {
            (Net::Retina(_), Protocol::Scale(s)) if s != 1.0 => s,
            _ => return (None, ones),
        };
        let mut factors = Vec::with_capacity(images.len());
        let scaled = images
            .iter()
            .map(|img| {
                let (w, h) = img.dimensions();
                let r = |v: u32| ((v as f64 * s).round() as u32).max(1);
                let (nw, nh) = (r(w), r(h));
                factors.push([w as f32 / nw as f32, h as f32 / nh as f32]);
                image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle)
            })
            .collect();
        (Some(scaled), factors)
    }

    fn compiled(&self, images: &[RgbImage], dump: bool, th: Thresholds) -> Result<Arc<Compiled>> {
        self.compiled_for(images, dump, th, None)
    }

    fn compiled_for(
        &self,
        images: &[RgbImage],
        dump: bool,
        th: Thresholds,
        blur: Option<&Blur>,
    ) -> Result<Arc<Compiled>> {
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
        let key = (
            sizes,
            dump,
            [th.score.to_bits(), th.nms.to_bits()],
            blur.map(|b| (b.mode, b.mask_scale.to_bits())),
        );
        let mut cache = self.plans.lock().unwrap();
        if let Some(pos) = cache.iter().position(|c| c.key == key) {
            let c = cache.remove(pos);
            cache.push(c.clone());
            return Ok(c);
        }
        let c = Arc::new(self.build_plan(key)?);
        self.compiled.fetch_add(1, Ordering::Relaxed);
        cache.push(c.clone());
        while cache.len() > 1
            && (cache.len() > PLAN_CACHE
                || cache.iter().map(|c| c.plan.arena_bytes()).sum::<u64>() > PLAN_CACHE_BYTES)
        {
            cache.remove(0);
        }
        Ok(c)
    }

    /// Appends the detection graph of one group; returns its I/O and the bytes of its largest tensor.
    // The arguments are GroupSpec's fields; a second struct for them would only be built here.
    #[allow(clippy::too_many_arguments)]
    fn append_group(
        &self,
        g: &mut Graph,
        k: usize,
        hw: [usize; 2],
        idxs: &[usize],
        sizes: &[[usize; 2]],
        dump: bool,
        th: Thresholds,
    ) -> Result<(GroupIo, u64)> {
        let spec = pipeline::GroupSpec {
            k,
            hw,
            idxs,
            sizes,
            th,
            dump,
            limit: self.limit,
        };
        let io = match &self.net {
            Net::Retina(net) => pipeline::retina_group(net, g, &spec)?,
            Net::Vgg(net) => pipeline::vgg_group(net, g, &spec, self.protocol)?,
        };
        Ok((io, g.max_tensor_bytes()))
    }

    /// The steps (shader, entry point, override constants, ...) of the plan that [`Detector::detect_batch`] builds
    /// for images of `sizes` (`[H, W]` each), without compiling them: for checks that other shader compilers accept
    /// every pipeline the detector creates (`tests/translate.rs`, `.ci/tint-check`).
    pub fn plan_steps(&self, sizes: &[[usize; 2]]) -> Result<Vec<crate::gpu::StepDesc>> {
        Ok(self.graph(sizes, false, self.th)?.0.steps().to_vec())
    }

    fn build_plan(&self, key: PlanKey) -> Result<Compiled> {
        let th = Thresholds {
            score: f32::from_bits(key.2[0]),
            nms: f32::from_bits(key.2[1]),
        };
        let (mut g, ios) = self.graph(&key.0, key.1, th)?;
        let anonymised = match key.3 {
            Some((mode, bits)) => {
                let b = Blur {
                    mode,
                    mask_scale: f32::from_bits(bits),
                };
                crate::model::anonymise::append(&mut g, &ios, &key.0, &b)?
            }
            None => Vec::new(),
        };
        let plan = g.compile(&self.ctx)?;
        Ok(Compiled {
            key,
            lock: Mutex::new(()),
            plan,
            groups: ios,
            anonymised,
        })
    }

    fn graph(
        &self,
        sizes: &[[usize; 2]],
        dump: bool,
        th: Thresholds,
    ) -> Result<(Graph, Vec<GroupIo>)> {
        let mut g = Graph::with_numerics(self.numerics.conv, self.numerics.maps);
        // Group images by network input size (retinaface: padded size; ssh-vgg16: original size, hence equal
        // scales), keeping first-appearance order.
        let group_key = |s: [usize; 2]| match self.net {
            Net::Retina(_) => rf::padded_size(s),
            Net::Vgg(_) => s,
        };
        let mut groups: Vec<([usize; 2], Vec<usize>)> = Vec::new();
        for (i, &s) in sizes.iter().enumerate() {
            let p = group_key(s);
            match groups.iter_mut().find(|(q, _)| *q == p) {
                Some((_, v)) => v.push(i),
                None => groups.push((p, vec![i])),
            }
        }
        // A batch makes every feature map N times larger: split a group so that its largest tensor still fits one
        // storage binding (an image that does not fit alone fails at compile with the tensor, size and limit).
        let mut batches: Vec<([usize; 2], Vec<usize>)> = Vec::new();
        for (gk, idxs) in groups {
            let one = self.append_group(
                &mut Graph::with_numerics(self.numerics.conv, self.numerics.maps),
                0,
                gk,
                &idxs[..1],
                sizes,
                false,
                th,
            )?;
            let per_image = one.1.max(1);
            let n_max = (self.limit / per_image).max(1) as usize;
            batches.extend(idxs.chunks(n_max).map(|c| (gk, c.to_vec())));
        }
        let mut ios = Vec::new();
        for (k, (gk, idxs)) in batches.iter().enumerate() {
            ios.push(self.append_group(&mut g, k, *gk, idxs, sizes, dump, th)?.0);
        }
        Ok((g, ios))
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
