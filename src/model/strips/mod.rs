//! Running the networks in row strips, so that no feature map exceeds one storage binding.
//!
//! A feature map too large for one binding is held as row pieces ([`Map`]); every stage of both networks (conv
//! chains and inverted-residual blocks, pools, SSH modules with their concat, heads, the FPN and M1 merges) runs on
//! horizontal bands of its output with the halo rows its layers need ([`chain`], [`merge`]). Maps that fit one
//! binding stay single tensors and the layers run exactly as without strips; in strips every output value is still
//! computed from the same inputs in the same order, so results are bit-identical.

pub mod chain;
pub mod io;
pub mod map;
pub mod merge;

pub use chain::{run_stage, Branch, ChainLayer, Stage};
pub use map::{plan_bands, Map};
pub use merge::{run_merge, Merge, Up};
