//! Training of SSH on the GPU (issue 12): CPU references and helpers of the training targets and data.

pub mod data;
pub mod targets;
