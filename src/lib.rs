//! sshface: SSH face detection where every layer is a WGSL compute shader dispatched through wgpu.
//!
//! ```no_run
//! fn main() -> Result<(), sshface::Error> {
//!     let det = sshface::Detector::builder().build()?; // bundled retinaface-mnv2 weights
//!     let img = sshface::image_io::load_rgb("photo.jpg")?;
//!     for f in det.detect(&img)? {
//!         println!("{:?} {}", f.bbox, f.score);
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The stable API is [`Detector`], [`DetectorBuilder`], [`DetectOptions`], [`Face`], [`Model`], [`Protocol`],
//! [`Precision`], [`AdapterOptions`], [`Error`] and [`image_io`]. The modules `gpu`, `ops`, `model`, `reference`
//! and `convert` are public for the project's own tests, benchmarks and tools: they may change in any release.

#![warn(missing_docs)]

#[allow(missing_docs)] // unstable internals (see above)
pub mod convert;
pub mod detector;
pub mod error;
#[allow(missing_docs)] // unstable internals (see above)
pub mod gpu;
pub mod image_io;
#[allow(missing_docs)] // unstable internals (see above)
pub mod model;
#[allow(missing_docs)] // unstable internals (see above)
pub mod ops;
pub mod options;
#[allow(missing_docs)] // unstable internals (see above)
pub mod readers;
#[allow(missing_docs)] // unstable internals (see above)
pub mod reference;
#[allow(missing_docs)] // unstable internals (see above)
pub mod train;

pub use detector::{Detector, DetectorBuilder, Face, Model, NamedTensor, Protocol};
/// The `image` crate whose `RgbImage` [`Detector::detect`] takes, re-exported so that callers need not match its
/// version.
pub use image;
pub use options::{DetectOptions, ImageFaces};
/// The `wgpu` crate of [`AdapterOptions::backends`] and [`GpuContext`], re-exported for the same reason.
pub use wgpu;

/// The README's Rust blocks, compiled (and run where not `no_run`) by `cargo test --doc` like any doc example.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use error::{Error, Result};
pub use gpu::{AdapterOptions, GemmTier, GpuContext, Precision, ShaderChecks};

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn detector_is_send_sync() {
        assert_send_sync::<crate::Detector>();
    }
}
