//! The library's error type. Every message names the file, tensor, layer or size and what was expected.

use thiserror::Error;

/// Result with the library's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the library can fail with; each message names the file, tensor, layer or size involved.
#[derive(Debug, Error)]
pub enum Error {
    /// No GPU adapter matched the request.
    #[error("no GPU adapter found ({tried}). sshface needs a Vulkan, Metal, DX12 or OpenGL driver; on Linux without a GPU install the software Vulkan driver: `apt-get install -y mesa-vulkan-drivers` (lavapipe)")]
    NoAdapter {
        /// What was tried: backends, name filters, the adapters present.
        tried: String,
    },

    /// The adapter refused to create a device.
    #[error("could not create a GPU device on adapter '{adapter}': {msg}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// What went wrong.
        msg: String,
    },

    /// A tensor or buffer does not fit into one storage binding of this device.
    #[error("tensor '{name}' needs {bytes} bytes, more than this device's max storage binding of {limit} bytes (shape {shape:?})")]
    TooLarge {
        /// The tensor (or image) name.
        name: String,
        /// Bytes it needs.
        bytes: u64,
        /// The device's limit in bytes.
        limit: u64,
        /// Its shape.
        shape: Vec<usize>,
    },

    /// A tensor has a zero dimension.
    #[error("tensor '{name}' has a zero-size shape {shape:?}; every dimension must be at least 1")]
    Empty {
        /// The tensor (or image) name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },

    /// An operator got inputs whose shapes do not fit together.
    #[error("layer '{layer}': {msg}")]
    Shape {
        /// The layer (weight name).
        layer: String,
        /// What went wrong.
        msg: String,
    },

    /// A weight file is missing a tensor, has an unknown one or one of the wrong shape or dtype.
    #[error("weights {file}: {msg}")]
    Weights {
        /// The file.
        file: String,
        /// What went wrong.
        msg: String,
    },

    /// An image could not be read or decoded.
    #[error("image {path}: {msg}")]
    Image {
        /// The file, or the label of in-memory bytes.
        path: String,
        /// What went wrong.
        msg: String,
    },

    /// A model file could not be converted.
    #[error("convert {file}: {msg}")]
    Convert {
        /// The file.
        file: String,
        /// What went wrong.
        msg: String,
    },

    /// The GPU reported a validation or out-of-memory error.
    #[error("GPU error in {what}: {msg}")]
    Gpu {
        /// The pass or step.
        what: String,
        /// What went wrong.
        msg: String,
    },

    /// The GPU device was lost (driver reset, hang recovery, removal) or given up after a submit outlived the GPU
    /// timeout. The detector cannot run anything more: every later call fails with this error.
    #[error("GPU device '{adapter}' is lost: {reason}. Every later call on this detector fails; build a new Detector (a new device) to continue")]
    DeviceLost {
        /// The adapter's name.
        adapter: String,
        /// What happened first: the driver's message, a destroyed device, or the submit that timed out.
        reason: String,
    },

    /// A submit did not complete within the GPU timeout (`DetectorBuilder::gpu_timeout`, `--gpu-timeout`). The device
    /// is given up: later calls fail with [`Error::DeviceLost`].
    #[error("GPU '{adapter}': {what} did not complete within {secs:.1} s (the GPU timeout); the device is considered hung and given up")]
    Timeout {
        /// The adapter's name.
        adapter: String,
        /// The work waited for.
        what: String,
        /// Seconds waited.
        secs: f64,
    },

    /// A GPU buffer could not be created: larger than the device's largest buffer, or the device is out of memory.
    #[error("GPU out of memory: {what} needs a buffer of {bytes} bytes: {msg}")]
    OutOfMemory {
        /// The buffer's use: the weight, arena slot (with its tensors) or staging buffer.
        what: String,
        /// Bytes asked for.
        bytes: u64,
        /// What went wrong.
        msg: String,
    },

    /// A text file (e.g. WIDER FACE's `wider_face_train_bbx_gt.txt`) does not hold what its format requires.
    #[error("{file}:{line}: {msg}")]
    Parse {
        /// The file, or the label of in-memory text.
        file: String,
        /// The 1-based line; one past the last line when the text ends too early.
        line: usize,
        /// What was expected and what was found.
        msg: String,
    },

    /// Invalid configuration (thresholds, sizes, options).
    #[error("invalid option: {0}")]
    Config(String),

    /// A file could not be read or written. The OS error is part of the message, not a `source()`, so that
    /// error chains (`{:#}`) say it once.
    #[error("{path}: {cause}")]
    Io {
        /// The file, or the label of in-memory bytes.
        path: String,
        /// The OS error.
        cause: std::io::Error,
    },
}

impl Error {
    /// A [`Error::Shape`] for `layer`.
    pub fn shape(layer: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Shape {
            layer: layer.into(),
            msg: msg.into(),
        }
    }
}
