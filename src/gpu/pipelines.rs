//! Shader modules and compute pipelines, compiled once per (shader, entry point, override constants).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::checks;
use crate::gpu::GpuContext;
use crate::ops::Shader;

/// Override constants in a fixed order, so equal sets give equal keys.
pub type Constants = Vec<(&'static str, f64)>;

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<String, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    /// Modules created by `create_shader_module_trusted`: what shows that
    /// [`ShaderChecks::Off`](crate::ShaderChecks::Off) reaches wgpu. (No key includes the choice: a context
    /// compiles one kind only.)
    unchecked: AtomicU64,
}

impl GpuContext {
    /// The compute pipeline for `entry` of `shader` specialised with `constants`, compiled on first use.
    pub fn pipeline(
        &self,
        shader: &'static Shader,
        entry: &'static str,
        constants: &Constants,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let key = format!("{}:{entry}:{constants:?}", shader.key());
        if let Some(p) = self.pipelines.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let module = self.module(shader)?;
        let pipeline = self.scoped(&format!("pipeline {key}"), || {
            Ok(self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&key),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                }))
        })?;
        let p = Arc::new(pipeline);
        self.pipelines
            .pipelines
            .lock()
            .unwrap()
            .insert(key, p.clone());
        Ok(p)
    }

    /// Shader modules this context created without runtime checks
    /// ([`ShaderChecks::Off`](crate::ShaderChecks::Off)); 0 with checks on.
    pub fn unchecked_modules(&self) -> u64 {
        self.pipelines.unchecked.load(Ordering::Relaxed)
    }

    fn module(&self, shader: &'static Shader) -> Result<Arc<wgpu::ShaderModule>> {
        let key = shader.key();
        if let Some(m) = self.pipelines.modules.lock().unwrap().get(&key) {
            return Ok(m.clone());
        }
        let m = self
            .scoped(&format!("shader {key}.wgsl"), || {
                let desc = wgpu::ShaderModuleDescriptor {
                    label: Some(&key),
                    source: wgpu::ShaderSource::Wgsl(shader.source.into()),
                };
                Ok(checks::create_module(
                    &self.device,
                    desc,
                    self.shader_checks(),
                    &self.pipelines.unchecked,
                ))
            })
            .map_err(|e| Error::Gpu {
                what: format!("compiling shaders/{key}.wgsl"),
                msg: e.to_string(),
            })?;
        let m = Arc::new(m);
        self.pipelines
            .modules
            .lock()
            .unwrap()
            .insert(key, m.clone());
        Ok(m)
    }
}
