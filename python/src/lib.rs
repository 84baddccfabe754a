//! `w2vbert._w2vbert`: the Python binding of the engine (`w2vbert::pipeline::Extractor`).
//!
//! Inputs are copied into Rust memory with the GIL held (`input::Audio`); decoding, resampling and the encoder
//! then run with the GIL released (`errors::detached`), inside the Extractor's own thread pool when `threads`
//! was given. Outputs are handed to NumPy without a copy.

mod errors;
mod input;

use errors::{detached, to_py, RequestError};
use input::{Audio, MAX_CHANNELS};
use numpy::ndarray::{Array1, Array2};
use numpy::{PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use w2vbert::model::Precision;
use w2vbert::pipeline::{Extractor as Engine, Output, Request, DEFAULT_BATCH_FRAMES, SEMANTIC_LAYER};


/// The engine, loaded once; thread-safe (one instance may serve several Python threads at once).
#[pyclass(module = "w2vbert", name = "Extractor", frozen)]
struct PyExtractor {
    engine: Engine,
    /// `threads=N`: the engine's rayon work runs in this pool; `None`: rayon's global pool (all cores).
    pool: Option<rayon::ThreadPool>,
    layers: Vec<usize>,
    checkpoint: PathBuf,
    stats: Option<PathBuf>,
    precision: Precision,
}

impl PyExtractor {
    fn run_one(&self, audio: &Audio) -> w2vbert::Result<Output> {
        self.in_pool(|| audio.run(&self.engine))
    }

    /// Every item through the library's packer (`Extractor::packed`, as the CLI's corpus runs): each result
    /// equals a call on that item alone, bit for bit, and an item that fails keeps its own error.
    fn run_many(&self, items: &[Audio]) -> Vec<w2vbert::Result<Output>> {
        self.in_pool(|| {
            let feats = items.iter().map(|a| ((), a.features()));
            self.engine.packed(feats, DEFAULT_BATCH_FRAMES).map(|(_, r)| r).collect()
        })
    }

    fn in_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    fn semantic_of<'py>(&self, py: Python<'py>, out: Output) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let h = out.semantic.ok_or_else(|| self.no_semantic())?;
        Ok(array2(py, h, out.t, out.hidden_size))
    }

    fn no_semantic(&self) -> PyErr {
        RequestError::new_err(format!(
            "semantic() needs layer {SEMANTIC_LAYER} and its stats; this Extractor was made with layers={:?} \
             (use hidden_states(), or include {SEMANTIC_LAYER} in layers)",
            self.layers
        ))
    }
}

fn array2(py: Python<'_>, data: Vec<f32>, t: usize, h: usize) -> Bound<'_, PyArray2<f32>> {
    let a = Array2::from_shape_vec((t, h), data).expect("engine output has t * hidden values");
    PyArray2::from_owned_array(py, a)
}

#[pymethods]
impl PyExtractor {
    /// Load a checkpoint directory (config.json + model.safetensors, f32/f16/bf16).
    ///
    /// layers: hidden states hidden_states() returns (0 = feature projection, k = output of encoder.layers[k-1]);
    ///     default [17]. Only the layers up to the deepest are loaded and run. When 17 is among them,
    ///     semantic() is available and the stats are required.
    /// stats: mean/var safetensors for (h17 - mean) / sqrt(var); default <checkpoint>/wav2vec2bert_stats.safetensors.
    /// precision: "fp32" (default, faithful to transformers fp32) or "bf16" (projection weights in bf16, f32
    ///     accumulation; AMX, AVX512-BF16, or widened to f32 where vdpbf16ps is slow; ~1e-2 relative L2 from
    ///     fp32; the README's table says which CPU gets what). On a CPU without AMX or AVX512-BF16, bf16 runs
    ///     fp32 with a RuntimeWarning; the `precision` property says which one is in force.
    /// threads: worker threads for this Extractor (default: rayon's global pool, all cores).
    #[new]
    #[pyo3(signature = (checkpoint, stats=None, layers=None, precision="fp32", threads=None))]
    fn new(
        py: Python<'_>,
        checkpoint: PathBuf,
        stats: Option<PathBuf>,
        layers: Option<Vec<i64>>,
        precision: &str,
        threads: Option<i64>,
    ) -> PyResult<Self> {
        let kind: Precision = precision.parse().map_err(RequestError::new_err)?;
        let request = Request::from_layers(&parse_layers(layers)?, true).map_err(|e| to_py(e, Some("layers")))?;
        let pool = match threads {
            None => None,
            Some(n) => {
                let n = w2vbert::pipeline::check_threads(n).map_err(|e| RequestError::new_err(e.to_string()))?;
                Some(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(n)
                        .build()
                        .map_err(|e| RequestError::new_err(format!("cannot start {n} threads: {e}")))?,
                )
            }
        };
        let layers = request.hidden_states.clone();
        let stats_path = request
            .normalized
            .map(|_| stats.clone().unwrap_or_else(|| checkpoint.join(w2vbert::stats::DEFAULT_STATS_FILE)));
        let load = || Engine::load_with(&checkpoint, &request, stats_path.as_deref(), kind);
        let engine = match &pool {
            Some(p) => detached(py, || p.install(load))?,
            None => detached(py, load)?,
        };
        let in_force = engine.precision();
        if in_force != kind {
            let msg = format!(
                "precision {kind} is not available on this CPU ({}); running {in_force}",
                w2vbert::kernels::bf16::describe()
            );
            PyErr::warn(
                py,
                &py.get_type::<pyo3::exceptions::PyRuntimeWarning>(),
                &std::ffi::CString::new(msg)?,
                1,
            )?;
        }
        Ok(PyExtractor {
            engine,
            pool,
            layers,
            checkpoint,
            stats: stats_path,
            precision: in_force,
        })
    }

    /// IndexTTS2 / MaskGCT semantic features (hidden_states[17] - mean) / sqrt(var): float32 [T, hidden].
    ///
    /// audio: a path (str / os.PathLike; decoded, channels averaged, resampled to 16 kHz as the CLI does) or a
    /// NumPy array with sample_rate: 1-D [samples] or 2-D [channels, samples] (1..=16 channels, averaged),
    /// float32 / float64 / int16 (int16 is scaled by 1/32768).
    #[pyo3(signature = (audio, sample_rate=None))]
    fn semantic<'py>(
        &self,
        py: Python<'py>,
        audio: &Bound<'py, PyAny>,
        sample_rate: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        if !self.layers.contains(&SEMANTIC_LAYER) {
            return Err(self.no_semantic());
        }
        let audio = Audio::parse(audio, sample_rate)?;
        let out = detached(py, || self.run_one(&audio))?;
        self.semantic_of(py, out)
    }

    /// Raw hidden states {k: float32 [T, hidden]} for every k in `layers` (same audio rules as semantic()).
    #[pyo3(signature = (audio, sample_rate=None))]
    fn hidden_states<'py>(
        &self,
        py: Python<'py>,
        audio: &Bound<'py, PyAny>,
        sample_rate: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let audio = Audio::parse(audio, sample_rate)?;
        let out = detached(py, || self.run_one(&audio))?;
        let dict = PyDict::new(py);
        for (k, h) in out.hidden_states {
            dict.set_item(k, array2(py, h, out.t, out.hidden_size))?;
        }
        Ok(dict)
    }

    /// semantic() of each item (paths and/or arrays; sample_rate applies to every array, paths ignore it). Returns a list of
    /// float32 [T_i, hidden] arrays, each equal to semantic(item). An error names the item's index.
    #[pyo3(signature = (audios, sample_rate=None))]
    fn semantic_batch<'py>(
        &self,
        py: Python<'py>,
        audios: Vec<Bound<'py, PyAny>>,
        sample_rate: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyArray2<f32>>>> {
        if !self.layers.contains(&SEMANTIC_LAYER) {
            return Err(self.no_semantic());
        }
        let mut items = Vec::with_capacity(audios.len());
        for (i, a) in audios.iter().enumerate() {
            // sample_rate is for the arrays of the list; paths carry their own.
            let rate = if input::is_path(a)? { None } else { sample_rate };
            let item = Audio::parse(a, rate).map_err(|e| {
                let msg = format!("audios[{i}]: {}", e.value(py));
                PyErr::from_type(e.get_type(py), msg)
            })?;
            items.push(item);
        }
        let results = detached(py, || Ok(self.run_many(&items)))?;
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let out = r.map_err(|e| to_py(e, Some(&format!("audios[{i}]"))))?;
                self.semantic_of(py, out)
            })
            .collect()
    }

    /// Hidden states returned by hidden_states().
    #[getter]
    fn layers(&self) -> Vec<usize> {
        self.layers.clone()
    }

    /// Width of every output row (1024 for w2v-bert-2.0).
    #[getter]
    fn hidden_size(&self) -> usize {
        self.engine.model.config.hidden_size
    }

    #[getter]
    fn precision(&self) -> String {
        self.precision.to_string()
    }

    #[getter]
    fn checkpoint(&self) -> PathBuf {
        self.checkpoint.clone()
    }

    /// The stats file in use (None when layer 17 is not requested).
    #[getter]
    fn stats(&self) -> Option<PathBuf> {
        self.stats.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "w2vbert.Extractor({:?}, layers={:?}, precision={:?}, threads={})",
            self.checkpoint.display().to_string(),
            self.layers,
            self.precision.to_string(),
            self.pool
                .as_ref()
                .map_or("None".to_string(), |p| p.current_num_threads().to_string())
        )
    }
}

/// `layers=` as indices (default [17]); `Request::from_layers` drops repeats.
fn parse_layers(layers: Option<Vec<i64>>) -> PyResult<Vec<usize>> {
    let Some(layers) = layers else {
        return Ok(vec![SEMANTIC_LAYER]);
    };
    layers
        .into_iter()
        .map(|k| usize::try_from(k).map_err(|_| RequestError::new_err(format!("layers: {k} is negative"))))
        .collect()
}

/// `(input_features [T, 160], attention_mask [T])`.
type FbankArrays<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<i32>>);

/// SeamlessM4TFeatureExtractor's output for one utterance: (input_features float32 [T, 160],
/// attention_mask int32 [T]), as HF's extractor returns them with return_tensors="np" (without the batch axis).
/// Same audio rules as Extractor.semantic().
#[pyfunction]
#[pyo3(signature = (audio, sample_rate=None))]
fn fbank<'py>(
    py: Python<'py>,
    audio: &Bound<'py, PyAny>,
    sample_rate: Option<&Bound<'py, PyAny>>,
) -> PyResult<FbankArrays<'py>> {
    let audio = Audio::parse(audio, sample_rate)?;
    let f = detached(py, || audio.features())?;
    let mask: Array1<i32> = f.mask.iter().map(|&m| m as i32).collect();
    Ok((
        array2(py, f.data, f.t, w2vbert::audio::FEATURE_DIM),
        PyArray1::from_owned_array(py, mask),
    ))
}

/// Test hook: panics inside the engine's guarded call path, which must raise InternalError, not unwind into
/// Python. Not part of the API.
#[pyfunction]
fn _panic_for_test(py: Python<'_>, message: String) -> PyResult<()> {
    detached(py, || -> w2vbert::Result<()> { panic!("{message}") })
}

#[pymodule]
fn _w2vbert(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Built for x86-64-v3 (AVX2 + FMA) like the CLI: refuse to load on an older CPU instead of crashing later.
    if let Err(msg) = w2vbert::kernels::cpu::check_baseline() {
        return Err(pyo3::exceptions::PyImportError::new_err(msg));
    }
    m.add_class::<PyExtractor>()?;
    m.add_function(wrap_pyfunction!(fbank, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    m.add("SEMANTIC_LAYER", SEMANTIC_LAYER)?;
    m.add("MAX_CHANNELS", MAX_CHANNELS)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The SIMD baseline the engine was compiled for ("x86-64-v3" with the repository's .cargo/config.toml):
    // scripts/check_release.sh reads it from an installed wheel.
    m.add("BUILD_BASELINE", w2vbert::kernels::cpu::BUILD_BASELINE)?;
    Ok(())
}
