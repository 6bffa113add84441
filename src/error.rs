//! The library's error type. Every message names the file, tensor, layer or size and what was expected.

use thiserror::Error;

/// Result with the library's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// No GPU adapter matched the request.
    #[error("no GPU adapter found ({tried}). sshface needs a Vulkan, Metal or DX12 driver; on Linux without a GPU install the software Vulkan driver: `apt-get install -y mesa-vulkan-drivers` (lavapipe), and set WGPU_BACKEND=vulkan")]
    NoAdapter { tried: String },

    /// The adapter refused to create a device.
    #[error("could not create a GPU device on adapter '{adapter}': {msg}")]
    Device { adapter: String, msg: String },

    /// A tensor or buffer does not fit into one storage binding of this device.
    #[error("tensor '{name}' needs {bytes} bytes, more than this device's max storage binding of {limit} bytes (shape {shape:?})")]
    TooLarge {
        name: String,
        bytes: u64,
        limit: u64,
        shape: Vec<usize>,
    },

    /// A tensor has a zero dimension.
    #[error("tensor '{name}' has a zero-size shape {shape:?}; every dimension must be at least 1")]
    Empty { name: String, shape: Vec<usize> },

    /// An operator got inputs whose shapes do not fit together.
    #[error("layer '{layer}': {msg}")]
    Shape { layer: String, msg: String },

    /// A weight file is missing a tensor, has an unknown one or one of the wrong shape or dtype.
    #[error("weights {file}: {msg}")]
    Weights { file: String, msg: String },

    /// An image could not be read or decoded.
    #[error("image {path}: {msg}")]
    Image { path: String, msg: String },

    /// A model file could not be converted.
    #[error("convert {file}: {msg}")]
    Convert { file: String, msg: String },

    /// The GPU reported a validation or out-of-memory error.
    #[error("GPU error in {what}: {msg}")]
    Gpu { what: String, msg: String },

    /// Invalid configuration (thresholds, sizes, options).
    #[error("invalid option: {0}")]
    Config(String),

    /// A file could not be read or written. The OS error is part of the message, not a `source()`, so that
    /// error chains (`{:#}`) say it once.
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
}

impl Error {
    pub fn shape(layer: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Shape {
            layer: layer.into(),
            msg: msg.into(),
        }
    }
}
