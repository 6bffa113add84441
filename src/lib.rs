//! sshface: SSH face detection where every layer is a WGSL compute shader dispatched through wgpu.

pub mod error;
pub mod gpu;
pub mod image_io;
pub mod ops;
pub mod reference;

pub use error::{Error, Result};
pub use gpu::{AdapterOptions, GpuContext};
