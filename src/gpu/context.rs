//! Adapter choice, device creation with the adapter's limits, weight upload and GPU error capture.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::backend;
use crate::gpu::pipelines::PipelineCache;
use crate::gpu::select::{self, AdapterFacts, DeviceChoice};
use crate::gpu::{DType, ShaderChecks};

/// How to choose the GPU adapter. Explicit fields win over the environment
/// (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`), which wins over the defaults.
#[derive(Clone, Debug, Default)]
pub struct AdapterOptions {
    /// Backends to consider, e.g. `wgpu::Backends::VULKAN`. `None`: `WGPU_BACKEND`, else the primary backends
    /// (Vulkan, Metal, DX12), else GL when those have no adapter.
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name. `None`: `WGPU_ADAPTER_NAME` or the best adapter.
    pub adapter_name: Option<String>,
    /// `Auto`: the GPU a scheduler assigned (`CUDA_VISIBLE_DEVICES`, …), else the best; `Index(n)`: adapter n.
    pub device: DeviceChoice,
}

impl AdapterOptions {
    /// Parses a backend list such as `vulkan`, `metal`, `dx12`, `gl` or `vulkan,metal`.
    pub fn parse_backends(s: &str) -> Result<wgpu::Backends> {
        let b = wgpu::Backends::from_comma_list(s);
        if b.is_empty() {
            return Err(Error::Config(format!(
                "unknown backend list '{s}': expected vulkan, metal, dx12 or gl"
            )));
        }
        Ok(b)
    }

    /// The backends in force (explicit, else `WGPU_BACKEND`, else the primary ones, and GL when none of those has
    /// an adapter) and their adapters in wgpu's enumeration order: the indexes of `--device N` and
    /// `sshface adapters`.
    pub fn enumerate(&self) -> Result<(wgpu::Backends, Vec<wgpu::Adapter>)> {
        let backends = match (self.backends, std::env::var("WGPU_BACKEND").ok()) {
            (Some(b), _) => b,
            (None, Some(s)) => AdapterOptions::parse_backends(&s)?,
            (None, None) => {
                // GL is not primary (fewer features, slower), but a machine whose only driver is GL should still
                // detect rather than ask for a driver it does not need.
                let primary = Self::adapters(wgpu::Backends::PRIMARY);
                if !primary.is_empty() {
                    return Ok((wgpu::Backends::PRIMARY, primary));
                }
                wgpu::Backends::PRIMARY | wgpu::Backends::GL
            }
        };
        Ok((backends, Self::adapters(backends)))
    }

    fn adapters(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
        desc.backends = backends;
        // Asked for by name only: wgpu's no-op device (compiled in with wgpu's `noop` feature, as the tests do)
        // lets CPU-only checks build the networks' real graphs; it never runs anything.
        desc.backend_options.noop.enable |= backends == wgpu::Backends::NOOP;
        let instance = wgpu::Instance::new(desc);
        pollster::block_on(instance.enumerate_adapters(backends))
    }
}

/// A weight tensor uploaded to the GPU once and bound read-only, its values stored as `dtype` (conv
/// weights of an f16 network are f16; biases and tables are f32).
#[derive(Clone, Debug)]
pub struct Weight {
    pub name: String,
    pub shape: Vec<usize>,
    pub buffer: Arc<wgpu::Buffer>,
    pub dtype: DType,
}

impl Weight {
    /// Whether training updates this weight in place ([`GpuContext::trainable`]): nothing may be derived from it
    /// once ([`Derived`](crate::gpu::Derived)), and only such weights are written or read back.
    pub fn is_trainable(&self) -> bool {
        self.buffer.usage().contains(wgpu::BufferUsages::COPY_SRC)
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The device, its queue, the adapter it came from and the cache of compiled pipelines.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Why this adapter was chosen (`--device 1`, `CUDA_VISIBLE_DEVICES=2 → …`, `best adapter`), for logs.
    pub chosen_by: String,
    /// Set when [`DeviceChoice::AutoOrBest`] opened another adapter than the scheduler assigned, saying why; the
    /// caller shows it (the Python package as a `RuntimeWarning`).
    pub selection_warning: Option<String>,
    /// Square sizes (8, 16) of the adapter's cooperative matrices with f16 operands and f32
    /// accumulators, empty without `EXPERIMENTAL_COOPERATIVE_MATRIX` and `SHADER_F16`.
    pub coop_sizes: Vec<u32>,
    /// Fixed at creation, so that the pipeline cache never holds modules of both kinds.
    shader_checks: ShaderChecks,
    pub(crate) pipelines: PipelineCache,
    pub(crate) derived: crate::gpu::derived::DerivedCache,
    /// Device lost or given up, the GPU timeout, test faults.
    pub(crate) health: crate::gpu::health::Health,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuContext({})", self.describe())
    }
}

impl GpuContext {
    /// Chooses an adapter (see [`AdapterOptions`]) and opens a device with the adapter's own limits.
    pub fn new(opts: &AdapterOptions) -> Result<Self> {
        Self::with_shader_checks(opts, ShaderChecks::On)
    }

    /// [`GpuContext::new`] whose shader modules are compiled with or without runtime checks (see [`ShaderChecks`]).
    pub fn with_shader_checks(opts: &AdapterOptions, shader_checks: ShaderChecks) -> Result<Self> {
        // One device opened at a time in the process: Mesa 26.1's lavapipe crashed (SIGSEGV) in 3 of 4 runs of a
        // test that opened devices from three threads at once. Next to opening a device the wait costs nothing.
        static OPENING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = OPENING.lock().unwrap_or_else(|e| e.into_inner());
        let (backends, adapters) = opts.enumerate()?;
        let name = opts
            .adapter_name
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .filter(|s| !s.is_empty());

        let facts: Vec<AdapterFacts> = adapters.iter().map(|a| (&a.get_info()).into()).collect();
        let visible = select::visible_from_env(|k| std::env::var(k).ok());
        let chosen = select::choose(&facts, name.as_deref(), opts.device, visible.as_ref())
            .map_err(|e| match e {
                Error::NoAdapter { tried } => Error::NoAdapter {
                    tried: format!("backends {backends:?}; {tried}"),
                },
                e => e,
            })?;
        let Some(adapter) = adapters.into_iter().nth(chosen.index) else {
            return Err(Error::NoAdapter {
                tried: format!("adapter {} vanished during selection", chosen.index),
            });
        };
        let info = adapter.get_info();
        let mut features = adapter.features() & backend::wanted_features();
        let coop_sizes = backend::coop_sizes(&adapter, features);
        if coop_sizes.is_empty() {
            // Only request the experimental feature where our shaders can use it.
            features.remove(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        }
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("sshface"),
            required_features: features,
            required_limits: limits.clone(),
            // SAFETY (wgpu's terms for experimental features): the only experimental feature we request is
            // EXPERIMENTAL_COOPERATIVE_MATRIX, and only for configurations the adapter itself lists. Our
            // cooperative-matrix shaders are reached only from uniform control flow, every subgroup of a
            // workgroup is full (workgroup size a multiple of the subgroup size), loads and stores stay
            // inside workgroup arrays whose bounds hold for every index, and the shaders are validated
            // by naga in the tests; their results are compared with the f64 reference on lavapipe.
            experimental_features:
                if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
                    unsafe { wgpu::ExperimentalFeatures::enabled() }
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Device {
            adapter: info.name.clone(),
            msg: e.to_string(),
        })?;
        // Errors are caught by error scopes around each call; anything that escapes is reported, not a panic.
        device.on_uncaptured_error(Arc::new(|e| {
            eprintln!("sshface: uncaptured GPU error: {e}")
        }));
        let timeout = match info.device_type {
            wgpu::DeviceType::Cpu => crate::gpu::health::DEFAULT_TIMEOUT_CPU,
            _ => crate::gpu::health::DEFAULT_TIMEOUT,
        };
        let health = crate::gpu::health::Health::new(&device, timeout);
        Ok(GpuContext {
            health,
            device,
            queue,
            info,
            limits,
            features,
            chosen_by: chosen.why,
            selection_warning: chosen.warning,
            coop_sizes,
            shader_checks,
            pipelines: PipelineCache::default(),
            derived: Default::default(),
        })
    }

    /// One line naming the adapter, backend and driver, for logs (the adapter line on stderr).
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            self.info.name,
            self.info.backend,
            self.info.device_type,
            self.info.driver,
            self.info.driver_info
        )
    }

    /// Whether this context's shaders are compiled with wgpu's runtime checks.
    pub fn shader_checks(&self) -> ShaderChecks {
        self.shader_checks
    }

    /// The cooperative-matrix size our convolutions use: 16 where offered (NVIDIA, AMD), else 8
    /// (lavapipe, Apple); `None` without f16 cooperative matrices.
    pub fn coop_size(&self) -> Option<u32> {
        self.coop_sizes.iter().copied().max()
    }

    /// The largest buffer one storage binding may cover on this device.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Checks that a tensor of `shape` (f32 elements) is non-empty and fits one storage binding.
    pub fn check_size(&self, name: &str, shape: &[usize]) -> Result<u64> {
        self.check_bytes(name, shape, 4)
    }

    /// [`GpuContext::check_size`] for elements of `elem` bytes.
    pub fn check_bytes(&self, name: &str, shape: &[usize], elem: usize) -> Result<u64> {
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::Empty {
                name: name.to_string(),
                shape: shape.to_vec(),
            });
        }
        let bytes = shape
            .iter()
            .try_fold(elem as u64, |acc, &d| acc.checked_mul(d as u64))
            .unwrap_or(u64::MAX);
        if bytes > self.max_binding() {
            return Err(Error::TooLarge {
                name: name.to_string(),
                bytes,
                limit: self.max_binding(),
                shape: shape.to_vec(),
            });
        }
        Ok(bytes)
    }

    /// Uploads an f32 tensor that shaders read (weights, biases, constant tables).
    pub fn weight(&self, name: &str, data: &[f32], shape: &[usize]) -> Result<Weight> {
        self.weight_as(name, data, shape, DType::F32)
    }

    /// [`GpuContext::weight`] stored as `dtype`: f16 values are rounded to nearest even, and need an
    /// adapter with `SHADER_F16` to be read. Buffers are padded to 16 bytes (vec4 loads stay in bounds).
    pub fn weight_as(
        &self,
        name: &str,
        data: &[f32],
        shape: &[usize],
        dtype: DType,
    ) -> Result<Weight> {
        self.upload(name, data, shape, dtype, wgpu::BufferUsages::empty())
    }

    /// An f32 tensor that training updates in place and reads back: a parameter, its gradient accumulator or its
    /// momentum. Bound like a weight, or as a graph tensor through [`Graph::external`](crate::gpu::Graph::external).
    pub fn trainable(&self, name: &str, data: &[f32], shape: &[usize]) -> Result<Weight> {
        self.upload(name, data, shape, DType::F32, wgpu::BufferUsages::COPY_SRC)
    }

    /// Overwrites an f32 weight's values (restoring a checkpoint, zeroing a gradient).
    pub fn write_weight(&self, w: &Weight, data: &[f32]) -> Result<()> {
        if !w.is_trainable() {
            // Buffers derived from it (packed copies) would go stale.
            return Err(Error::shape(
                &w.name,
                "only weights made by GpuContext::trainable can be overwritten",
            ));
        }
        if w.dtype != DType::F32 || data.len() != w.len() {
            return Err(Error::shape(
                &w.name,
                format!(
                    "{} f32 values written to a {:?} weight of shape {:?}",
                    data.len(),
                    w.dtype,
                    w.shape
                ),
            ));
        }
        self.queue
            .write_buffer(&w.buffer, 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Reads an f32 weight made by [`GpuContext::trainable`] back to the host (checkpoints, `--dump-grads`).
    pub fn read_weight(&self, w: &Weight) -> Result<Vec<f32>> {
        if w.dtype != DType::F32 || !w.is_trainable() {
            return Err(Error::shape(
                &w.name,
                "only f32 weights made by GpuContext::trainable can be read back",
            ));
        }
        let len = (w.len() * 4) as u64;
        let staging = self.create_buffer(
            &format!("readback of '{}'", w.name),
            len.next_multiple_of(4).max(4),
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&w.buffer, 0, &staging, 0, len);
        let what = format!("reading '{}'", w.name);
        let submitted = self.submit(&what, enc.finish())?;
        let bytes = crate::gpu::readback::map_read(self, &staging, len, &what, submitted)?;
        Ok(crate::gpu::readback::bytes_to_f32(&bytes))
    }

    fn upload(
        &self,
        name: &str,
        data: &[f32],
        shape: &[usize],
        dtype: DType,
        extra: wgpu::BufferUsages,
    ) -> Result<Weight> {
        self.check_bytes(name, shape, dtype.size())?;
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape(
                name,
                format!(
                    "{} values given for shape {shape:?} ({n} values)",
                    data.len()
                ),
            ));
        }
        let mut bytes = match dtype {
            DType::F32 => bytemuck::cast_slice::<f32, u8>(data).to_vec(),
            DType::F16 => crate::gpu::readback::f32_to_f16_bytes(data),
        };
        bytes.resize(bytes.len().next_multiple_of(16), 0);
        let buffer = self.create_buffer(
            &format!("weight '{name}'"),
            bytes.len() as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | extra,
        )?;
        self.queue.write_buffer(&buffer, 0, &bytes);
        Ok(Weight {
            name: name.to_string(),
            shape: shape.to_vec(),
            buffer: Arc::new(buffer),
            dtype,
        })
    }

    /// Runs `f` inside validation and out-of-memory error scopes; a captured GPU error becomes [`Error::Gpu`].
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let r = f();
        let e1 = pollster::block_on(val.pop());
        let e2 = pollster::block_on(oom.pop());
        if let Some(e) = e1.or(e2) {
            return Err(Error::Gpu {
                what: what.to_string(),
                msg: e.to_string(),
            });
        }
        r
    }
}
