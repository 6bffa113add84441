//! Every operator shader against its CPU reference on case tables of seeded random data.
//! Each case module lists its shapes and tolerances beside the cases.

mod common;

#[path = "ops/add.rs"]
mod add;
#[path = "ops/blur.rs"]
mod blur;
#[path = "ops/conv2d.rs"]
mod conv2d;
#[path = "ops/conv2d_api.rs"]
mod conv2d_api;
#[path = "ops/conv2d_coop.rs"]
mod conv2d_coop;
#[path = "ops/conv2d_f16.rs"]
mod conv2d_f16;
#[path = "ops/conv2d_gemm.rs"]
mod conv2d_gemm;
#[path = "ops/copy_rows.rs"]
mod copy_rows;
#[path = "ops/decode.rs"]
mod decode;
#[path = "ops/decode_errors.rs"]
mod decode_errors;
#[path = "ops/decode_golden.rs"]
mod decode_golden;
#[path = "ops/decode_hand.rs"]
mod decode_hand;
#[path = "ops/f16_maps.rs"]
mod f16_maps;
#[path = "ops/max_pool.rs"]
mod max_pool;
#[path = "ops/nms.rs"]
mod nms;
#[path = "ops/nms_reference.rs"]
mod nms_reference;
#[path = "ops/nonfinite.rs"]
mod nonfinite;
#[path = "ops/pack_kmajor.rs"]
mod pack_kmajor;
#[path = "ops/preprocess.rs"]
mod preprocess;
#[path = "ops/preprocess_f16.rs"]
mod preprocess_f16;
#[path = "ops/preprocess_opencv.rs"]
mod preprocess_opencv;
#[path = "ops/runtime.rs"]
mod runtime;
#[path = "ops/softmax2.rs"]
mod softmax2;
#[path = "ops/unchecked.rs"]
mod unchecked;
#[path = "ops/upsample_bilinear.rs"]
mod upsample_bilinear;
#[path = "ops/upsample_nearest.rs"]
mod upsample_nearest;
