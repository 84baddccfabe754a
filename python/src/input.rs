//! What `audio` may be: a path (decoded and resampled as the CLI does) or a NumPy array with its sample rate.
//! Everything is read into owned Rust memory while the GIL is held, so computing needs no Python object.

use crate::errors::AudioError;
use numpy::{PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::path::PathBuf;
use w2vbert::audio::Features;
use w2vbert::pipeline::{Extractor, Output};

/// Most rows a 2-D `[channels, samples]` array may have. More is taken for a transposed `[samples, channels]`
/// array (rejected: ambiguous); audio with more channels can be passed as a file.
pub const MAX_CHANNELS: usize = 16;

/// One input, owned.
pub enum Audio {
    File(PathBuf),
    /// `interleaved` is `[frames, channels]` at `rate` Hz, nominal range ±1.
    Samples {
        interleaved: Vec<f32>,
        channels: usize,
        rate: u32,
    },
}

impl Audio {
    /// `audio` + `sample_rate` as given to `semantic`, `hidden_states`, `fbank`.
    pub fn parse(audio: &Bound<'_, PyAny>, sample_rate: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        if is_path(audio)? {
            if let Some(r) = sample_rate.filter(|r| !r.is_none()) {
                return Err(AudioError::new_err(format!(
                    "sample_rate={r} was given with a file path: a file's rate is read from the file \
                     (sample_rate is for arrays)"
                )));
            }
            return Ok(Audio::File(audio.extract::<PathBuf>()?));
        }
        let Ok(array) = audio.cast::<PyUntypedArray>() else {
            return Err(AudioError::new_err(format!(
                "audio must be a path (str or os.PathLike) or a numpy.ndarray, not {} (a torch tensor: pass \
                 tensor.numpy())",
                audio.get_type().name()?
            )));
        };
        let rate = parse_rate(sample_rate)?;
        let shape = array.shape().to_vec();
        let channels = match shape[..] {
            [_] => 1,
            [c, n] if (1..=MAX_CHANNELS).contains(&c) => {
                let _ = n;
                c
            }
            [c, n] => {
                return Err(AudioError::new_err(format!(
                    "a 2-D audio array is [channels, samples] with 1..={MAX_CHANNELS} channels; got shape ({c}, \
                     {n}). For [samples, channels] pass array.T"
                )))
            }
            _ => {
                return Err(AudioError::new_err(format!(
                    "audio array must be 1-D [samples] or 2-D [channels, samples]; got {}-D shape {shape:?}",
                    shape.len()
                )))
            }
        };
        let interleaved = if let Ok(a) = audio.extract::<PyReadonlyArrayDyn<'_, f32>>() {
            interleave(&a, |x| x)
        } else if let Ok(a) = audio.extract::<PyReadonlyArrayDyn<'_, f64>>() {
            // As `astype(np.float32)`: round to nearest.
            interleave(&a, |x| x as f32)
        } else if let Ok(a) = audio.extract::<PyReadonlyArrayDyn<'_, i16>>() {
            // soundfile's / librosa's scaling of 16-bit PCM (exact: 1/32768 is a power of two).
            interleave(&a, |x| x as f32 / 32768.0)
        } else {
            return Err(AudioError::new_err(format!(
                "audio array dtype must be float32, float64 or int16 (scaled by 1/32768); got {}",
                array.dtype()
            )));
        };
        Ok(Audio::Samples {
            interleaved,
            channels,
            rate,
        })
    }

    /// Semantic features / hidden states, as `ex` was loaded for.
    pub fn run(&self, ex: &Extractor) -> w2vbert::Result<Output> {
        match self {
            Audio::File(p) => ex.run_file(p),
            Audio::Samples {
                interleaved,
                channels,
                rate,
            } => ex.run_interleaved(interleaved, *channels, *rate),
        }
    }

    /// The SeamlessM4T fbank features, as the CLI's `--features-only`.
    pub fn features(&self) -> w2vbert::Result<Features> {
        match self {
            Audio::File(p) => w2vbert::audio::features_from_file(p),
            Audio::Samples {
                interleaved,
                channels,
                rate,
            } => w2vbert::audio::features_from_interleaved(interleaved, *channels, *rate),
        }
    }
}

/// A `str` or an `os.PathLike`.
pub fn is_path(audio: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(audio.is_instance_of::<PyString>() || audio.hasattr("__fspath__")?)
}

/// `[samples]` or `[channels, samples]` (any strides) → interleaved `[samples, channels]` f32.
fn interleave<T: numpy::Element + Copy>(a: &PyReadonlyArrayDyn<'_, T>, f: impl Fn(T) -> f32) -> Vec<f32> {
    // The transpose of [channels, samples] iterated in logical order is [samples, channels]: interleaved.
    a.as_array().t().iter().map(|&x| f(x)).collect()
}

fn parse_rate(sample_rate: Option<&Bound<'_, PyAny>>) -> PyResult<u32> {
    let Some(r) = sample_rate.filter(|r| !r.is_none()) else {
        return Err(AudioError::new_err(
            "sample_rate is required with an audio array (e.g. sample_rate=16000)",
        ));
    };
    match r.extract::<i64>() {
        Ok(v) if v > 0 && v <= u32::MAX as i64 => Ok(v as u32),
        _ => Err(AudioError::new_err(format!(
            "sample_rate must be a positive integer number of Hz; got {r}"
        ))),
    }
}
