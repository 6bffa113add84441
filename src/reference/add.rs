//! Reference of `shaders/add.wgsl`.

use crate::ops::Activation;

/// `act(a + b)` elementwise.
pub fn add(a: &[f32], b: &[f32], act: Activation) -> Vec<f32> {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| act.apply(x + y)).collect()
}
