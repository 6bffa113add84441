//! The fuzz targets' bodies live in [`checks`], so that `tests/fuzz_corpus.rs` runs the committed corpus through
//! exactly the same code on the stable toolchain.

pub mod checks;
