//! `_sshface.Detector`: one `sshface::Detector` shared by every Python thread that holds it; each call copies its
//! inputs while holding the GIL, then releases the GIL for decoding and GPU work.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use sshface::gpu::DeviceChoice;
use sshface::image::RgbImage;
use sshface::{AdapterOptions, DetectOptions, Face, Model, Precision};

use crate::arrays::{faces_to_arrays, to_rgb, Arrays};
use crate::encoded::{detect_encoded, Item};
use crate::to_py;

#[pyclass(frozen, module = "sshface._sshface", name = "Detector")]
pub struct Detector {
    inner: sshface::Detector,
}

/// `device`: `"auto"` (or `None`) or an adapter index of `sshface.adapters()`.
fn device_choice(device: Option<&Bound<'_, PyAny>>, strict: bool) -> PyResult<DeviceChoice> {
    let auto = if strict {
        DeviceChoice::Auto
    } else {
        DeviceChoice::AutoOrBest
    };
    let Some(d) = device else { return Ok(auto) };
    if let Ok(n) = d.extract::<usize>() {
        return Ok(DeviceChoice::Index(n));
    }
    match d.extract::<String>() {
        Ok(s) if s == "auto" => Ok(auto),
        _ => Err(PyValueError::new_err(format!(
            "device={}: expected \"auto\" or an adapter index (int) of sshface.adapters()",
            d.repr()?
        ))),
    }
}

/// Runs images in batches of at most `batch` equal-size images (moved into their groups, not copied); results in
/// input order.
pub(crate) fn run_grouped(
    det: &sshface::Detector,
    images: Vec<RgbImage>,
    opts: &DetectOptions,
    batch: usize,
) -> sshface::Result<Vec<Vec<Face>>> {
    let mut out = vec![Vec::new(); images.len()];
    let mut by_size: BTreeMap<(u32, u32), (Vec<usize>, Vec<RgbImage>)> = BTreeMap::new();
    for (i, im) in images.into_iter().enumerate() {
        let group = by_size.entry(im.dimensions()).or_default();
        group.0.push(i);
        group.1.push(im);
    }
    let batch = batch.max(1);
    for (idx, imgs) in by_size.values() {
        for (idx, chunk) in idx.chunks(batch).zip(imgs.chunks(batch)) {
            for (&i, faces) in idx.iter().zip(det.detect_batch_with(chunk, opts)?) {
                out[i] = faces;
            }
        }
    }
    Ok(out)
}

fn options(score: Option<f32>, nms: Option<f32>, max_faces: Option<usize>) -> DetectOptions {
    DetectOptions {
        score,
        nms,
        max_faces,
    }
}

#[pymethods]
impl Detector {
    #[new]
    #[pyo3(signature = (model="retinaface-mnv2", weights=None, score=None, nms=None, precision="auto",
                        device=None, adapter=None, backend=None, strict_device=false, gpu_timeout=None))]
    #[allow(clippy::too_many_arguments)] // the Python constructor's keyword arguments
    fn new(
        py: Python<'_>,
        model: &str,
        weights: Option<PathBuf>,
        score: Option<f32>,
        nms: Option<f32>,
        precision: &str,
        device: Option<&Bound<'_, PyAny>>,
        adapter: Option<String>,
        backend: Option<&str>,
        strict_device: bool,
        gpu_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let model: Model = model.parse().map_err(to_py)?;
        let precision: Precision = precision.parse().map_err(to_py)?;
        let adapter = AdapterOptions {
            backends: backend
                .map(AdapterOptions::parse_backends)
                .transpose()
                .map_err(to_py)?,
            adapter_name: adapter,
            device: device_choice(device, strict_device)?,
        };
        let mut b = sshface::Detector::builder()
            .model(model)
            .precision(precision)
            .adapter(adapter);
        if let Some(t) = gpu_timeout {
            if !(t.is_finite() && t > 0.0) {
                return Err(PyValueError::new_err(format!(
                    "gpu_timeout={t}: expected a positive number of seconds"
                )));
            }
            b = b.gpu_timeout(std::time::Duration::from_secs_f64(t));
        }
        if let Some(w) = weights {
            b = b.weights(w);
        }
        if let Some(s) = score {
            b = b.score_threshold(s);
        }
        if let Some(n) = nms {
            b = b.nms_threshold(n);
        }
        let inner = py.detach(|| b.build()).map_err(to_py)?;
        Ok(Detector { inner })
    }

    /// Faces of each image array: a list of `(boxes, scores, landmarks)` in input order.
    #[pyo3(signature = (images, score=None, nms=None, max_faces=None, batch_size=8))]
    fn detect_arrays<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyList>,
        score: Option<f32>,
        nms: Option<f32>,
        max_faces: Option<usize>,
        batch_size: usize,
    ) -> PyResult<Vec<Arrays<'py>>> {
        let imgs = images
            .iter()
            .enumerate()
            .map(|(i, a)| to_rgb(&a, &format!("images[{i}]")))
            .collect::<PyResult<Vec<_>>>()?;
        let opts = options(score, nms, max_faces);
        let det = &self.inner;
        let faces = py
            .detach(|| run_grouped(det, imgs, &opts, batch_size))
            .map_err(to_py)?;
        let lm = self.has_landmarks();
        Ok(faces.iter().map(|f| faces_to_arrays(py, f, lm)).collect())
    }

    /// Decodes (on `threads` threads, without the GIL) and detects each item, `bytes` of an encoded image or a
    /// path `str`. Per item: `(boxes, scores, landmarks)`, or the exception (`ValueError`, `OSError`) of an
    /// item that could not be read, not raised; and the warnings of images that decoded only partly. GPU
    /// failures raise.
    #[pyo3(signature = (items, labels=None, score=None, nms=None, max_faces=None, batch_size=8, threads=0))]
    #[allow(clippy::too_many_arguments)] // the Python method's keyword arguments
    fn detect_encoded<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyList>,
        labels: Option<Vec<String>>,
        score: Option<f32>,
        nms: Option<f32>,
        max_faces: Option<usize>,
        batch_size: usize,
        threads: usize,
    ) -> PyResult<(Vec<Bound<'py, PyAny>>, Vec<String>)> {
        if labels.as_ref().is_some_and(|l| l.len() != items.len()) {
            return Err(PyValueError::new_err(format!(
                "labels: {} labels for {} items",
                labels.map_or(0, |l| l.len()),
                items.len()
            )));
        }
        let mut list = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let label = labels.as_ref().map(|l| l[i].clone());
            if let Ok(b) = it.cast::<PyBytes>() {
                let label = label.unwrap_or_else(|| format!("items[{i}]"));
                list.push(Item::Bytes(label, b.as_bytes().to_vec()));
            } else if let Ok(p) = it.extract::<PathBuf>() {
                list.push(Item::Path(p));
            } else {
                return Err(PyValueError::new_err(format!(
                    "items[{i}]: expected bytes of an encoded image or a path, got a {}",
                    it.get_type().name()?
                )));
            }
        }
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(4, |n| n.get().min(8)),
            n => n,
        };
        let opts = options(score, nms, max_faces);
        let det = &self.inner;
        let (res, warnings) = py
            .detach(|| detect_encoded(det, list, &opts, batch_size, threads))
            .map_err(to_py)?;
        let lm = self.has_landmarks();
        let res = res
            .into_iter()
            .map(|r| match r {
                Ok(f) => Ok(faces_to_arrays(py, &f, lm).into_pyobject(py)?.into_any()),
                Err(e) => Ok(to_py(e).into_value(py).into_bound(py).into_any()),
            })
            .collect::<PyResult<_>>()?;
        Ok((res, warnings))
    }

    /// The network's name (`retinaface-mnv2`, `ssh-vgg16`).
    #[getter]
    fn model(&self) -> &'static str {
        self.inner.model().name()
    }

    /// Whether faces come with 5 landmarks.
    #[getter]
    fn has_landmarks(&self) -> bool {
        self.inner.model() == Model::RetinafaceMnv2
    }

    /// The adapter, backend, driver, why it was chosen and the precision that runs.
    #[getter]
    fn adapter_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let ctx = self.inner.context();
        let d = PyDict::new(py);
        d.set_item("name", &ctx.info.name)?;
        d.set_item("backend", format!("{:?}", ctx.info.backend).to_lowercase())?;
        d.set_item("type", format!("{:?}", ctx.info.device_type))?;
        d.set_item("pci_bus", &ctx.info.device_pci_bus_id)?;
        d.set_item(
            "driver",
            format!("{} {}", ctx.info.driver, ctx.info.driver_info).trim(),
        )?;
        d.set_item("chosen_by", &ctx.chosen_by)?;
        d.set_item("precision", self.inner.numerics().describe())?;
        d.set_item("describe", self.inner.describe())?;
        Ok(d)
    }

    /// Set when `device="auto"` opened another adapter than a scheduler variable assigned, saying why.
    #[getter]
    fn selection_warning(&self) -> Option<String> {
        self.inner.context().selection_warning.clone()
    }
}
