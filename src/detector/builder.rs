//! [`DetectorBuilder`]: the model, weights, thresholds, precision and adapter of a [`Detector`], checked
//! before any GPU work where possible.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::{Detector, Model, Net, BUNDLED_RETINAFACE};
use crate::error::{Error, Result};
use crate::gpu::{AdapterOptions, GemmTier, GpuContext, Numerics, Precision, ShaderChecks};
use crate::model::pipeline::{Protocol, Thresholds};
use crate::model::retinaface_mnv2::RetinaFaceMnv2;
use crate::model::ssh_vgg16::SshVgg16;
use crate::model::weights::WeightFile;

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
    gemm: GemmTier,
    raw_boxes: bool,
    gpu_timeout: Option<std::time::Duration>,
    fault: Option<crate::gpu::Fault>,
    shader_checks: Option<ShaderChecks>,
}

impl DetectorBuilder {
    /// Numeric precision (default [`Precision::Auto`]: the fastest the adapter supports). An explicit
    /// precision the adapter cannot run (f16 without `SHADER_F16`, f16-coop without cooperative matrices)
    /// makes [`build`](Self::build) fail with an error naming the adapter.
    pub fn precision(mut self, p: Precision) -> Self {
        self.precision = p;
        self
    }
    /// The register-tiled GEMM of the f32-arithmetic convolutions (precisions `f32` and `f16`; default
    /// [`GemmTier::Auto`]: the wide tier on GPUs, the small one on CPU adapters). Results agree to rounding
    /// either way; this exists to measure one against the other (`sshface bench --gemm`).
    pub fn gemm(mut self, t: GemmTier) -> Self {
        self.gemm = t;
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

    /// The longest one GPU submit may take (default 600 s on GPUs, 3600 s on CPU adapters such as lavapipe, where a
    /// large ssh-vgg16 batch takes minutes). A submit that outlives it makes the call fail with [`Error::Timeout`] and
    /// gives the device up: later calls fail with [`Error::DeviceLost`]. It applies to the whole GPU context, so to
    /// every detector sharing it through [`context`](Self::context).
    pub fn gpu_timeout(mut self, t: std::time::Duration) -> Self {
        self.gpu_timeout = Some(t);
        self
    }

    /// Whether shaders are compiled with wgpu's runtime checks (default [`ShaderChecks::On`]; see [`ShaderChecks`]).
    /// It belongs to the GPU context: with [`context`](Self::context), a different choice than the context's is an
    /// error at [`build`](Self::build).
    pub fn shader_checks(mut self, c: ShaderChecks) -> Self {
        self.shader_checks = Some(c);
        self
    }

    /// Test-only: injects a GPU fault (lost device, stalled submit, out of memory) to check that it ends in an error.
    #[doc(hidden)]
    pub fn inject_fault(mut self, f: crate::gpu::Fault) -> Self {
        self.fault = Some(f);
        self
    }

    /// Opens the adapter (unless [`context`](Self::context) gave one), loads the weights and uploads them.
    ///
    /// # Errors
    /// [`Error::Config`] for a threshold outside [0, 1], a scale that is not a positive number, a protocol the model
    /// does not have (the pyramid for retinaface-mnv2), `max_binding(0)`, or ssh-vgg16 without weights;
    /// [`shader_checks`](Self::shader_checks) other than a shared context's;
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
        if self.gpu_timeout == Some(std::time::Duration::ZERO) {
            return Err(Error::Config(
                "gpu_timeout(0): the GPU timeout must be positive".into(),
            ));
        }
        let ctx = match self.context {
            Some(c) => c,
            None => Arc::new(GpuContext::with_shader_checks(
                &self.adapter,
                self.shader_checks.unwrap_or_default(),
            )?),
        };
        if let Some(want) = self.shader_checks.filter(|&c| c != ctx.shader_checks()) {
            return Err(Error::Config(format!(
                "shader checks {} asked for, but the shared GPU context compiles its shaders with checks {}: \
                 open a context with GpuContext::with_shader_checks for them",
                want.name(),
                ctx.shader_checks().name()
            )));
        }
        if let Some(t) = self.gpu_timeout {
            ctx.set_gpu_timeout(t);
        }
        let numerics = Numerics::resolve(self.precision, &ctx)?.with_gemm(self.gemm, &ctx);
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
        if let Some(f) = self.fault {
            ctx.inject_fault(f);
        }
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
