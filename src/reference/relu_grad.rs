//! Reference of `shaders/relu_grad.wgsl`.

/// `dy` where the forward output `y` is > 0, else 0.
pub fn relu_grad(y: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(y.len(), dy.len(), "relu_grad: y and dy lengths");
    y.iter()
        .zip(dy)
        .map(|(&y, &d)| if y > 0.0 { d } else { 0.0 })
        .collect()
}
