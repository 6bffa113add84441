//! Every operator shader against its CPU reference on case tables of seeded random data.
//! Each case module lists its shapes and tolerances beside the cases.

mod common;

#[path = "ops/add.rs"]
mod add;
#[path = "ops/nms.rs"]
mod nms;
#[path = "ops/nms_reference.rs"]
mod nms_reference;
#[path = "ops/runtime.rs"]
mod runtime;
