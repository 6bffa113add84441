//! sshface: SSH face detection where every layer is a WGSL compute shader dispatched through wgpu.
//!
//! ```no_run
//! let det = sshface::Detector::builder().build()?; // bundled retinaface-mnv2 weights
//! let img = sshface::image_io::load_rgb("photo.jpg")?;
//! for f in det.detect(&img)? {
//!     println!("{:?} {}", f.bbox, f.score);
//! }
//! # Ok::<(), sshface::Error>(())
//! ```

pub mod convert;
pub mod detector;
pub mod error;
pub mod gpu;
pub mod image_io;
pub mod model;
pub mod ops;
pub mod reference;

pub use detector::{Detector, DetectorBuilder, Face, Model, NamedTensor, Protocol};
pub use error::{Error, Result};
pub use gpu::{AdapterOptions, GpuContext, Precision};

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn detector_is_send_sync() {
        assert_send_sync::<crate::Detector>();
    }
}
