//! Network definitions and their CPU-side geometry (anchors, priors).

pub mod anchors;
pub mod anonymise;
pub mod blocks;
pub mod pipeline;
pub mod retinaface_mnv2;
pub mod ssh_vgg16;
pub mod strips;
pub mod weights;
