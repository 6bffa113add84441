//! Readers of untrusted container formats the CLI takes in: MATLAB MAT files (WIDER FACE's ground truth) and tar
//! streams of images (webdataset shards). They live in the library so that `fuzz/` can drive them; every length
//! they read from the input is checked against the bytes actually there, or bounded, before it sizes an allocation.

pub mod mat;
pub mod tar;
