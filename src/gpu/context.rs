//! Adapter choice, device creation with the adapter's limits, weight upload and GPU error capture.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::pipelines::PipelineCache;
use crate::gpu::select::{self, AdapterFacts, DeviceChoice};

/// How to choose the GPU adapter. Explicit fields win over the environment
/// (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`), which wins over the defaults.
#[derive(Clone, Debug, Default)]
pub struct AdapterOptions {
    /// Backends to consider, e.g. `wgpu::Backends::VULKAN`. `None`: `WGPU_BACKEND` or all primary backends.
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

    /// The backends in force (explicit, else `WGPU_BACKEND`, else the primary ones) and their adapters in wgpu's
    /// enumeration order: the indexes of `--device N` and `sshface adapters`.
    pub fn enumerate(&self) -> Result<(wgpu::Backends, Vec<wgpu::Adapter>)> {
        let backends = match (self.backends, std::env::var("WGPU_BACKEND").ok()) {
            (Some(b), _) => b,
            (None, Some(s)) => AdapterOptions::parse_backends(&s)?,
            (None, None) => wgpu::Backends::PRIMARY,
        };
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        Ok((
            backends,
            pollster::block_on(instance.enumerate_adapters(backends)),
        ))
    }
}

/// An f32 weight tensor uploaded to the GPU once and bound read-only.
#[derive(Clone, Debug)]
pub struct Weight {
    pub name: String,
    pub shape: Vec<usize>,
    pub buffer: Arc<wgpu::Buffer>,
}

impl Weight {
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
    pub(crate) pipelines: PipelineCache,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuContext({})", self.describe())
    }
}

/// Features used when the adapter has them; none is required.
fn wanted_features() -> wgpu::Features {
    wgpu::Features::SHADER_F16
        | wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
        | wgpu::Features::SUBGROUP
}

impl GpuContext {
    /// Chooses an adapter (see [`AdapterOptions`]) and opens a device with the adapter's own limits.
    pub fn new(opts: &AdapterOptions) -> Result<Self> {
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
        let features = adapter.features() & wanted_features();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("sshface"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
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
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            features,
            chosen_by: chosen.why,
            pipelines: PipelineCache::default(),
        })
    }

    /// One line naming the adapter, backend and driver, for logs and `--verbose` output.
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

    /// The largest buffer one storage binding may cover on this device.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Checks that a tensor of `shape` (f32 elements) is non-empty and fits one storage binding.
    pub fn check_size(&self, name: &str, shape: &[usize]) -> Result<u64> {
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::Empty {
                name: name.to_string(),
                shape: shape.to_vec(),
            });
        }
        let bytes = shape
            .iter()
            .try_fold(4u64, |acc, &d| acc.checked_mul(d as u64))
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
        self.check_size(name, shape)?;
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
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: (n as u64 * 4).next_multiple_of(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
        Ok(Weight {
            name: name.to_string(),
            shape: shape.to_vec(),
            buffer: Arc::new(buffer),
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
