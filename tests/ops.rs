//! Every operator shader against its CPU reference on case tables of seeded random data.
//! Each case module lists its shapes and tolerances beside the cases.

mod common;

#[path = "ops/add.rs"]
mod add;
#[path = "ops/conv2d.rs"]
mod conv2d;
#[path = "ops/conv2d_api.rs"]
mod conv2d_api;
#[path = "ops/runtime.rs"]
mod runtime;
