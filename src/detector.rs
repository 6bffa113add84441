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
}

impl DetectorBuilder {
    /// Numeric precision (default [`Precision::Auto`]: the fastest the adapter supports). An explicit
    /// precision the adapter cannot run (f16 without `SHADER_F16`, f16-coop without cooperative matrices)
    /// makes [`build`](Self::build) fail with an error naming the adapter.
    pub fn precision(mut self, p: Precision) -> Self {
        self.precision = p;
        self
    }
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
    /// ssh-vgg16 test protocol (single scale 1200/1600 by default, a fixed scale, or the pyramid).
    /// Plan as if one storage binding held at most `bytes` (never more than the device allows): high-resolution
    /// layers then run in row strips and batches split earlier. Lowers peak memory; results are identical.
    pub fn max_binding(mut self, bytes: u64) -> Self {
        self.max_binding = Some(bytes);
        self
    }
    pub fn protocol(mut self, p: Protocol) -> Self {
        self.protocol = p;
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
        if let Protocol::Scale(s) = self.protocol {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::Config(format!(
                    "--scale {s} must be a positive number"
                )));
            }
        }
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

/// A plan's key: image sizes, whether it dumps, and the anonymisation (mode, mask scale bits) it appends.
type PlanKey = (Vec<[usize; 2]>, bool, Option<(BlurMode, u32)>);

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
    plans: Mutex<Vec<Arc<Compiled>>>,
    truncated: AtomicU64,
    compiled: AtomicU64,
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

    /// Detects faces in one image.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Face>> {
        Ok(self
            .detect_batch(std::slice::from_ref(image))?
            .pop()
            .unwrap_or_default())
    }

    /// Detects faces in several images with one compute submit (then one small copy of the kept rows). Images of
    /// equal input size run as one batch; images of different sizes run side by side in the same plan, so each gets
    /// exactly its single-image result.
    pub fn detect_batch(&self, images: &[RgbImage]) -> Result<Vec<Vec<Face>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.compiled(images, false)?;
        Ok(self.run_rows(&c, images, &[])?.0)
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
        let c = self.compiled_for(images, false, Some(blur))?;
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
        let (faces, bytes) = self.run_rows(&c, images, &reads)?;
        let mut imgs = vec![RgbImage::new(0, 0); images.len()];
        for ((idx, _), b) in extra.into_iter().zip(bytes) {
            let hw = [images[idx].height() as usize, images[idx].width() as usize];
            imgs[idx] = crate::model::anonymise::unpack(&b, hw);
        }
        Ok(faces.into_iter().zip(imgs).collect())
    }

    /// Runs the plan on `images`; returns each image's faces and the bytes of the `extra` ranges, read back with the
    /// kept rows.
    fn run_rows(
        &self,
        c: &Compiled,
        images: &[RgbImage],
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
            faces[idx] = bytes_to_f32(&bytes)
                .chunks_exact(16)
                .map(|r| row_to_face(r, self.model))
                .collect();
        }
        Ok((faces, extra_bytes))
    }

    /// The tensors of `--dump` for `image`: for retinaface-mnv2 the raw per-anchor heads in the layout of the golden
    /// `*.heads.safetensors` (`cls_logits [N,2]`, `bbox [N,4]`, `landm [N,10]`, `priors [N,4]`); for ssh-vgg16, at the
    /// first scale, `m{k}.cls_prob [H,W,A]`, `m{k}.bbox_pred [4A,H,W]` and the feature maps `conv4_3`, `conv5_3`,
    /// `conv4_fuse_final`, `pool6` (`[C,H,W]`).
    pub fn dump(&self, image: &RgbImage) -> Result<Vec<NamedTensor>> {
        let c = self.compiled(std::slice::from_ref(image), true)?;
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
        let c = self.compiled(std::slice::from_ref(image), false)?;
        let _guard = c.lock.lock().unwrap();
        self.write_inputs(&c, std::slice::from_ref(image))?;
        c.plan.profile(&self.ctx)
    }

    /// Bytes of GPU memory that [`detect_batch`](Self::detect_batch) of `images` holds: the plan's arena (feature
    /// maps, inputs, outputs) plus the weight buffers it binds. Builds the plan if it is not cached yet; other
    /// cached plans, pipelines and the small readback buffer are not counted.
    pub fn gpu_memory_bytes(&self, images: &[RgbImage]) -> Result<u64> {
        let c = self.compiled(images, false)?;
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

    fn compiled(&self, images: &[RgbImage], dump: bool) -> Result<Arc<Compiled>> {
        self.compiled_for(images, dump, None)
    }

    fn compiled_for(
        &self,
        images: &[RgbImage],
        dump: bool,
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
        let key = (sizes, dump, blur.map(|b| (b.mode, b.mask_scale.to_bits())));
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
    fn append_group(
        &self,
        g: &mut Graph,
        k: usize,
        hw: [usize; 2],
        idxs: &[usize],
        sizes: &[[usize; 2]],
        dump: bool,
    ) -> Result<(GroupIo, u64)> {
        let spec = pipeline::GroupSpec {
            k,
            hw,
            idxs,
            sizes,
            th: self.th,
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
        Ok(self.graph(sizes, false)?.0.steps().to_vec())
    }

    fn build_plan(&self, key: PlanKey) -> Result<Compiled> {
        let (mut g, ios) = self.graph(&key.0, key.1)?;
        let anonymised = match key.2 {
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

    fn graph(&self, sizes: &[[usize; 2]], dump: bool) -> Result<(Graph, Vec<GroupIo>)> {
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
            )?;
            let per_image = one.1.max(1);
            let n_max = (self.limit / per_image).max(1) as usize;
            batches.extend(idxs.chunks(n_max).map(|c| (gk, c.to_vec())));
        }
        let mut ios = Vec::new();
        for (k, (gk, idxs)) in batches.iter().enumerate() {
            ios.push(self.append_group(&mut g, k, *gk, idxs, sizes, dump)?.0);
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
