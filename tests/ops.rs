//! Every operator shader against its CPU reference on case tables of seeded random data.
//! Each case module lists its shapes and tolerances beside the cases.

mod common;

#[path = "ops/add.rs"]
mod add;
#[path = "ops/decode.rs"]
mod decode;
#[path = "ops/decode_errors.rs"]
mod decode_errors;
#[path = "ops/decode_golden.rs"]
mod decode_golden;
#[path = "ops/runtime.rs"]
mod runtime;
