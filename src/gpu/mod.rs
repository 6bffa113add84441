//! GPU runtime: adapter and device, pipeline cache, tensor graph with an arena, one-submit plans and readback.

pub mod backend;
pub mod checks;
pub mod context;
pub mod derived;
pub mod graph;
pub mod health;
pub mod pipelines;
pub mod plan;
pub mod precision;
pub mod readback;
pub mod select;

pub use checks::ShaderChecks;
pub use context::{AdapterOptions, GpuContext, Weight};
pub use derived::Derived;
pub use graph::{Binding, DType, Graph, StepDesc, TensorId, TensorKind};
pub use health::{Fault, GpuMemory};
pub use plan::{Plan, StepTiming};
pub use precision::{ConvPath, GemmTier, Numerics, Precision};
pub use select::DeviceChoice;

/// Workgroups for `n` invocations of `wg` threads each, split over x and y so neither exceeds 65,535.
/// Shaders recover the flat index as `gid.x + gid.y * num_workgroups.x * WG`.
pub fn dispatch_1d(n: usize, wg: u32) -> [u32; 3] {
    let groups = n.div_ceil(wg as usize).max(1);
    if groups <= 65_535 {
        [groups as u32, 1, 1]
    } else {
        let y = groups.div_ceil(65_535);
        let x = groups.div_ceil(y);
        [x as u32, y as u32, 1]
    }
}
