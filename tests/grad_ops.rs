//! The backward ops of training (f32): each shader against its CPU reference on case tables of seeded
//! random data, and each CPU reference against central finite differences of the forward reference in f64
//! (loss = Σ random weights × output). Sizes are small so the file stays fast on lavapipe.

mod common;

#[path = "grad_ops/conv2d_grad.rs"]
mod conv2d_grad;
#[path = "grad_ops/finite_diff.rs"]
mod finite_diff;
#[path = "grad_ops/losses.rs"]
mod losses;
#[path = "grad_ops/pool_relu.rs"]
mod pool_relu;
#[path = "grad_ops/sgd.rs"]
mod sgd;
#[path = "grad_ops/upsample.rs"]
mod upsample;
