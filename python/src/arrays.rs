//! NumPy arrays in and out: an image array of any layout to an `RgbImage`, faces to `boxes`/`scores`/`landmarks`.

use numpy::ndarray::{Array1, Array2, Array3};
use numpy::{
    IntoPyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use sshface::image::RgbImage;
use sshface::Face;

const EXPECTED: &str =
    "expected a numpy uint8 array of shape [H, W, 3] (RGB), [H, W, 4] (RGBA) or [H, W] (grayscale)";

/// Copies an image array (C-contiguous or not) into an RGB image: RGBA drops alpha, grayscale is repeated into
/// the three channels. `what` names the argument in errors (`images[3]`). Needs the GIL; the copy is the only
/// time the array is read.
pub(crate) fn to_rgb(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<RgbImage> {
    let py = obj.py();
    let Ok(arr) = obj.cast::<PyUntypedArray>() else {
        let ty = obj.get_type().name()?;
        return Err(PyValueError::new_err(format!(
            "{what}: {EXPECTED}, got a {ty}"
        )));
    };
    let shape = arr.shape().to_vec();
    let dtype = arr.dtype();
    if !dtype.is_equiv_to(&numpy::dtype::<u8>(py)) {
        return Err(PyValueError::new_err(format!(
            "{what}: {EXPECTED}, got dtype {} with shape {shape:?} (convert with .astype(numpy.uint8) after \
             scaling to 0..255)",
            dtype.str()?
        )));
    }
    let (h, w, c) = match shape[..] {
        [h, w] => (h, w, 1),
        [h, w, c @ (1 | 3 | 4)] => (h, w, c),
        _ => {
            return Err(PyValueError::new_err(format!(
                "{what}: {EXPECTED}, got shape {shape:?}"
            )))
        }
    };
    let (Ok(w32), Ok(h32)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(PyValueError::new_err(format!(
            "{what}: {w}x{h} pixels is larger than an image can be (2^32 - 1 a side)"
        )));
    };
    if w == 0 || h == 0 {
        return Err(PyValueError::new_err(format!(
            "{what}: an empty image ({w}x{h} pixels); each side must be at least 1"
        )));
    }
    let typed = arr.cast::<PyArrayDyn<u8>>()?;
    let ro = typed
        .try_readonly()
        .map_err(|e| PyValueError::new_err(format!("{what}: cannot read the array: {e}")))?;
    let mut rgb = Vec::with_capacity(h * w * 3);
    // `as_slice` also accepts Fortran order, whose memory order is not the pixel order.
    let c_order = if typed.is_c_contiguous() {
        ro.as_slice().map_err(|_| ())
    } else {
        Err(())
    };
    match (c_order, c) {
        (Ok(s), 3) => rgb.extend_from_slice(s),
        (Ok(s), 4) => s
            .chunks_exact(4)
            .for_each(|p| rgb.extend_from_slice(&p[..3])),
        (Ok(s), _) => s.iter().for_each(|&v| rgb.extend_from_slice(&[v, v, v])),
        // Strided (a crop, a flip, a BGR→RGB view [..., ::-1], Fortran order): logical order, element by element.
        (Err(_), _) => {
            for (i, &v) in ro.as_array().iter().enumerate() {
                match c {
                    1 => rgb.extend_from_slice(&[v, v, v]),
                    _ if i % c < 3 => rgb.push(v),
                    _ => {}
                }
            }
        }
    }
    RgbImage::from_raw(w32, h32, rgb).ok_or_else(|| {
        PyValueError::new_err(format!("{what}: {w}x{h}x{c} does not match its data"))
    })
}

/// One image's faces as `(boxes [N, 4] float32, scores [N] float32, landmarks [N, 5, 2] float32 or None)`;
/// `landmarks` is `None` for networks without them (ssh-vgg16).
pub(crate) type Arrays<'py> = (
    Bound<'py, numpy::PyArray2<f32>>,
    Bound<'py, numpy::PyArray1<f32>>,
    Option<Bound<'py, numpy::PyArray3<f32>>>,
);

pub(crate) fn faces_to_arrays<'py>(
    py: Python<'py>,
    faces: &[Face],
    landmarks: bool,
) -> Arrays<'py> {
    let n = faces.len();
    let boxes: Vec<f32> = faces.iter().flat_map(|f| f.bbox).collect();
    let scores: Vec<f32> = faces.iter().map(|f| f.score).collect();
    let boxes = Array2::from_shape_vec((n, 4), boxes).expect("4 per face");
    let lm = landmarks.then(|| {
        let v: Vec<f32> = faces
            .iter()
            .flat_map(|f| f.landmarks.unwrap_or([[f32::NAN; 2]; 5]))
            .flatten()
            .collect();
        Array3::from_shape_vec((n, 5, 2), v)
            .expect("10 per face")
            .into_pyarray(py)
    });
    (
        boxes.into_pyarray(py),
        Array1::from(scores).into_pyarray(py),
        lm,
    )
}
