//! Network definitions and their CPU-side geometry (anchors, priors).

pub mod anchors;
pub mod weights;
