//! Training of SSH on the GPU (issue 12): WIDER data and flips, anchor targets, the trainable network, the recorded
//! forward pass and its backward, one step as one plan, and the trainer that runs steps and SGD updates.

pub mod data;
pub mod net;
pub mod step;
pub mod tape;
pub mod targets;
pub mod trainer;
