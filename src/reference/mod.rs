//! Plain-Rust CPU versions of every op, decode and NMS: the oracle the GPU shaders are tested against.
//! Written for clarity, not speed; f32 arithmetic as in the shaders unless a function says otherwise.

pub mod add;
pub mod blur;
pub mod conv2d;
pub mod conv2d_grad;
pub mod copy_rows;
pub mod decode;
pub mod max_pool;
pub mod max_pool_grad;
pub mod nms;
pub mod ohem;
pub mod pack_kmajor;
pub mod preprocess;
pub mod relu_grad;
pub mod sgd;
pub mod smooth_l1;
pub mod softmax2;
pub mod softmax_loss;
pub mod ssh_train;
pub mod ssh_vgg16;
pub mod upsample_bilinear;
pub mod upsample_bilinear_grad;
pub mod upsample_nearest;

/// A dense row-major CPU tensor; feature maps are `[N, C, H, W]`.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl CpuTensor {
    pub fn new(shape: &[usize], data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "CpuTensor: shape {shape:?} vs {} values",
            data.len()
        );
        CpuTensor {
            shape: shape.to_vec(),
            data,
        }
    }
    pub fn zeros(shape: &[usize]) -> Self {
        CpuTensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }
    /// `[N, C, H, W]` of a 4-D tensor.
    pub fn nchw(&self) -> [usize; 4] {
        <[usize; 4]>::try_from(self.shape.as_slice()).expect("4-D tensor")
    }
    /// Element (n, c, y, x) of a 4-D tensor.
    pub fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f32 {
        let [_, cc, h, w] = self.nchw();
        self.data[((n * cc + c) * h + y) * w + x]
    }
}
