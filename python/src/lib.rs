//! `sshface._sshface`: the Rust side of the Python package. The pure-Python package in `python/sshface/` wraps it
//! (the `Faces` records, argument defaults, warnings, Ray); this module holds the detector, the array conversions
//! and the error mapping, and releases the GIL for decoding and GPU work.

use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

mod arrays;
mod detector;
mod encoded;

create_exception!(
    _sshface,
    GpuError,
    PyRuntimeError,
    "A GPU or device failure: no usable adapter, device creation, a lost device, a GPU timeout, a GPU \
     validation or out-of-memory error. After a lost device or a timeout the detector stays failed: build a new one."
);
create_exception!(
    _sshface,
    NoAdapterError,
    GpuError,
    "No GPU adapter matches the request (or none is installed)."
);

/// A Rust error as the Python exception of its kind, with the Rust message.
pub(crate) fn to_py(e: sshface::Error) -> PyErr {
    use sshface::Error as E;
    let msg = e.to_string();
    // Exhaustive: a new variant must choose its Python exception here.
    match e {
        E::NoAdapter { .. } => NoAdapterError::new_err(msg),
        E::Device { .. }
        | E::Gpu { .. }
        | E::DeviceLost { .. }
        | E::Timeout { .. }
        | E::OutOfMemory { .. } => GpuError::new_err(msg),
        E::Io { .. } => PyOSError::new_err(msg),
        E::TooLarge { .. }
        | E::Empty { .. }
        | E::Shape { .. }
        | E::Weights { .. }
        | E::Image { .. }
        | E::Convert { .. }
        | E::Parse { .. }
        | E::Config(_) => PyValueError::new_err(msg),
    }
}

/// Every adapter wgpu sees on `backend` (or the default backends), as dicts: `index`, `name`, `backend`, `type`,
/// `pci_bus`, `driver`, and `auto` (the one `device="auto"` opens).
#[pyfunction]
#[pyo3(signature = (backend=None))]
fn adapters<'py>(py: Python<'py>, backend: Option<&str>) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let opts = sshface::AdapterOptions {
        backends: backend
            .map(sshface::AdapterOptions::parse_backends)
            .transpose()
            .map_err(to_py)?,
        ..Default::default()
    };
    let infos: Vec<sshface::wgpu::AdapterInfo> = py
        .detach(|| {
            opts.enumerate()
                .map(|(_, list)| list.iter().map(|a| a.get_info()).collect())
        })
        .map_err(to_py)?;
    let facts: Vec<_> = infos
        .iter()
        .map(sshface::gpu::select::AdapterFacts::from)
        .collect();
    let visible = sshface::gpu::select::visible_from_env(|k| std::env::var(k).ok());
    let name = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .filter(|s| !s.is_empty());
    let auto = sshface::gpu::select::choose(
        &facts,
        name.as_deref(),
        sshface::gpu::DeviceChoice::AutoOrBest,
        visible.as_ref(),
    )
    .ok()
    .map(|c| c.index);
    infos
        .iter()
        .enumerate()
        .map(|(k, i)| {
            let d = PyDict::new(py);
            d.set_item("index", k)?;
            d.set_item("name", &i.name)?;
            d.set_item("backend", format!("{:?}", i.backend).to_lowercase())?;
            d.set_item("type", format!("{:?}", i.device_type))?;
            d.set_item("pci_bus", &i.device_pci_bus_id)?;
            d.set_item("driver", format!("{} {}", i.driver, i.driver_info).trim())?;
            d.set_item("auto", auto == Some(k))?;
            Ok(d)
        })
        .collect()
}

#[pymodule]
fn _sshface(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("GpuError", py.get_type::<GpuError>())?;
    m.add("NoAdapterError", py.get_type::<NoAdapterError>())?;
    m.add_class::<detector::Detector>()?;
    m.add_function(wrap_pyfunction!(adapters, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("IMAGE_EXTENSIONS", sshface::image_io::EXTENSIONS.to_vec())?;
    Ok(())
}
