//! The public detector: builder, model choice, plan cache, and the mapping of kept rows to [`Face`]s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use image::RgbImage;

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Numerics, Precision, ShaderChecks, TensorId};
pub use crate::model::pipeline::Protocol;
use crate::model::pipeline::{self, Thresholds};
use crate::model::retinaface_mnv2::{self as rf, RetinaFaceMnv2};
use crate::model::ssh_vgg16::SshVgg16;
pub use crate::ops::blur::{Blur, BlurMode};

mod builder;
mod plans;
use crate::options::DetectOptions;
pub use builder::DetectorBuilder;
use plans::Compiled;

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

// One per detector: boxing the larger network would save nothing worth an indirection.
enum Net {
    Retina(Box<RetinaFaceMnv2>),
    Vgg(Box<SshVgg16>),
}

/// A face detector bound to one GPU device.
///
/// `Send + Sync`: share one detector between threads; results equal sequential calls. What serialises: building a
/// plan (one lock over the plan cache, held while a new list of image sizes compiles, so a thread needing a cached
/// plan waits for a build in progress), and calls that share a plan (same image sizes and options: each holds the
/// plan from writing its inputs to reading its rows). Calls with different plans record and submit concurrently on
/// the one queue; the GPU runs their submits in order.
///
/// GPU faults end in an error, never a hang or a panic: a submit that outlives the GPU timeout
/// ([`DetectorBuilder::gpu_timeout`]) is [`Error::Timeout`], a lost device [`Error::DeviceLost`], a buffer the
/// device cannot allocate [`Error::OutOfMemory`] naming its size. After a timeout or a loss the device is given up
/// and every later call fails with [`Error::DeviceLost`]: build a new detector to continue.
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

    /// Whether this detector's shaders run with wgpu's runtime checks (its context's choice).
    pub fn shader_checks(&self) -> ShaderChecks {
        self.ctx.shader_checks()
    }

    /// One line for logs: the adapter, backend, driver and the precision that runs, and `shader checks off` when so.
    pub fn describe(&self) -> String {
        let checks = match self.shader_checks() {
            ShaderChecks::On => "",
            ShaderChecks::Off => ", shader checks off",
        };
        format!(
            "{}, precision {}{checks}",
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

    /// Live GPU memory of the device from its allocator (buffers of every plan, weight and staging, wgpu's own
    /// included), where the backend keeps a report (Vulkan, DX12); `None` elsewhere. For watching long runs.
    pub fn gpu_memory(&self) -> Option<crate::gpu::GpuMemory> {
        self.ctx.memory()
    }

    /// The steps (shader, entry point, override constants, ...) of the plan that [`Detector::detect_batch`] builds
    /// for images of `sizes` (`[H, W]` each), without compiling them: for checks that other shader compilers accept
    /// every pipeline the detector creates (`tests/translate.rs`, `.ci/tint-check`).
    pub fn plan_steps(&self, sizes: &[[usize; 2]]) -> Result<Vec<crate::gpu::StepDesc>> {
        Ok(self.graph(sizes, false, self.th)?.0.steps().to_vec())
    }

    /// For the plan of [`plan_steps`](Self::plan_steps): the bytes of its largest tensor and of its arena (what
    /// [`gpu_memory_bytes`](Self::gpu_memory_bytes) counts less the weights), planned without compiling.
    pub fn plan_bytes(&self, sizes: &[[usize; 2]]) -> Result<(u64, u64)> {
        let g = self.graph(sizes, false, self.th)?.0;
        Ok((g.max_tensor_bytes(), g.arena_bytes()))
    }
}
