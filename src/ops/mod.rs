//! One module per WGSL shader (same stem as `shaders/<op>.wgsl`): its `Params` (Pod, mirrored in WGSL),
//! its output shape rule and a launcher that appends a labelled step to a [`Graph`](crate::gpu::Graph).

pub mod add;
pub mod conv2d;
pub mod conv2d_coop;
pub mod conv2d_gemm;
pub mod copy_rows;
pub mod decode;
pub mod fill;
pub mod max_pool;
pub mod nms;
pub mod nms_mask;
pub mod preprocess;
pub mod select_keys;
pub mod select_topk;
pub mod softmax2;
pub mod sort;
pub mod upsample_bilinear;
pub mod upsample_nearest;

/// A WGSL source file compiled into the binary.
#[derive(Debug)]
pub struct Shader {
    /// The file stem in `shaders/` and the name of its main entry point.
    pub name: &'static str,
    pub source: &'static str,
    /// `size_of` the Rust `Params` struct, checked against the WGSL struct by `tests/shaders_valid.rs`.
    pub params_size: usize,
}

/// `Shader` for `shaders/<name>.wgsl` with the Rust `Params` type it is driven with.
#[macro_export]
#[doc(hidden)]
macro_rules! shader {
    ($name:literal, $params:ty) => {
        $crate::ops::Shader {
            name: $name,
            source: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/shaders/",
                $name,
                ".wgsl"
            )),
            params_size: std::mem::size_of::<$params>(),
        }
    };
}

/// Every shader of the crate, for validation and the params layout test.
pub fn all_shaders() -> Vec<&'static Shader> {
    vec![
        &add::SHADER,
        &decode::SHADER,
        &fill::SHADER,
        &max_pool::SHADER,
        &softmax2::SHADER,
        &upsample_bilinear::SHADER,
        &upsample_nearest::SHADER,
        &preprocess::SHADER,
        &nms::SHADER,
        &nms_mask::SHADER,
        &select_keys::SHADER,
        &select_topk::SHADER,
        &sort::SHADER,
        &conv2d::SHADER,
        &conv2d_coop::SHADER8,
        &conv2d_coop::SHADER16,
        &conv2d_gemm::SHADER,
        &copy_rows::SHADER,
    ]
}

/// Activation fused into an op's epilogue; passed to shaders as the override constants `ACT` and `ALPHA`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    /// min(max(x, 0), 6)
    Relu6,
    /// x >= 0 ? x : alpha·x
    Leaky(f32),
}

impl Activation {
    /// Override constants `ACT` (0 none, 1 ReLU, 2 ReLU6, 3 LeakyReLU) and `ALPHA`.
    pub fn constants(self) -> [(&'static str, f64); 2] {
        let (code, alpha) = match self {
            Activation::None => (0.0, 0.0),
            Activation::Relu => (1.0, 0.0),
            Activation::Relu6 => (2.0, 0.0),
            Activation::Leaky(a) => (3.0, a as f64),
        };
        [("ACT", code), ("ALPHA", alpha)]
    }

    /// The same function on the CPU, as the shaders compute it in f32.
    // max-then-min as in the shaders' `min(max(x, 0.0), 6.0)`, not `clamp`, which differs on NaN.
    #[allow(clippy::manual_clamp)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Leaky(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
        }
    }
}

/// Default workgroup size of elementwise shaders (their `WG` override).
pub const WG: u32 = 256;
