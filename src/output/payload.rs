//! What one input's output file holds, how it is written, and when an existing file counts as complete (so a
//! resumed run skips it).
//!
//! Arrays, in file order: `hidden_states.K` (raw, `[T, hidden]`) for each K asked for, `semantic` (`[T, hidden]`)
//! when normalized, `mask` (`[T]`, 1.0 valid / 0.0 the padded last row of an odd frame count); for fbank features
//! `input_features` (`[T, 160]`) and `mask`. `.npy` holds the one array a single-array request makes.

use super::{check_npy, check_safetensors, write_npy, write_safetensors};
use crate::audio::{Features, FEATURE_DIM};
use crate::error::{Error, Result};
use crate::pipeline::{Output, Request};
use std::path::Path;

/// Output file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One f32 array per input (`<name>.npy`).
    Npy,
    /// Named f32 arrays plus `mask` (`<name>.safetensors`); the only format for several hidden states.
    Safetensors,
}

impl Format {
    pub fn ext(self) -> &'static str {
        match self {
            Format::Npy => "npy",
            Format::Safetensors => "safetensors",
        }
    }
}

/// One input's result, ready to write.
pub enum Payload {
    Features(Features),
    Encoded(Output),
}

impl Payload {
    /// Frames (rows) of every array.
    pub fn t(&self) -> usize {
        match self {
            Payload::Features(f) => f.t,
            Payload::Encoded(o) => o.t,
        }
    }

    /// Write atomically to `path` (see [`super::write_atomic`]).
    pub fn write(&self, path: &Path, format: Format) -> Result<()> {
        let (t, width, mask) = match self {
            Payload::Features(f) => (f.t, FEATURE_DIM, &f.mask),
            Payload::Encoded(o) => (o.t, o.hidden_size, &o.mask),
        };
        let shape = vec![t, width];
        let mut arrays: Vec<(String, &[f32])> = Vec::new();
        match self {
            Payload::Features(f) => arrays.push(("input_features".into(), &f.data)),
            Payload::Encoded(o) => {
                for (k, h) in &o.hidden_states {
                    arrays.push((format!("hidden_states.{k}"), h));
                }
                if let Some(s) = &o.semantic {
                    arrays.push(("semantic".into(), s));
                }
            }
        }
        match format {
            Format::Npy => {
                // The semantic features if computed, else the single hidden state (Format::for_request allows
                // .npy for one array only).
                let data = arrays
                    .last()
                    .ok_or_else(|| Error::Invalid("nothing was computed".into()))?
                    .1;
                write_npy(path, data, &shape)
            }
            Format::Safetensors => {
                let m: Vec<f32> = mask.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect();
                let mut tensors: Vec<(String, Vec<usize>, &[f32])> =
                    arrays.into_iter().map(|(n, d)| (n, shape.clone(), d)).collect();
                tensors.push(("mask".into(), vec![t], &m));
                write_safetensors(path, &tensors)
            }
        }
    }
}

/// What a complete output of one request holds: the format, the sorted array names (safetensors) and the row
/// width of its arrays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub format: Format,
    pub names: Vec<String>,
    pub width: usize,
}

impl Expected {
    /// `request` None: fbank features (`width` is then [`FEATURE_DIM`] whatever is passed).
    pub fn new(request: Option<&Request>, format: Format, hidden_size: usize) -> Self {
        let mut names = vec!["mask".to_string()];
        let width = match request {
            None => {
                names.push("input_features".into());
                FEATURE_DIM
            }
            Some(r) => {
                names.extend(r.hidden_states.iter().map(|k| format!("hidden_states.{k}")));
                if r.normalized.is_some() {
                    names.push("semantic".into());
                }
                hidden_size
            }
        };
        names.sort();
        names.dedup();
        Expected { format, names, width }
    }

    /// The frames of `path` if it is a complete output (valid header, exact size, the expected arrays with
    /// consistent shapes), else None.
    pub fn complete_frames(&self, path: &Path) -> Option<usize> {
        match self.format {
            Format::Npy => match check_npy(path).ok()?.as_slice() {
                [t, w] if *t > 0 && *w == self.width => Some(*t),
                _ => None,
            },
            Format::Safetensors => {
                let ts = check_safetensors(path).ok()?;
                let t = match ts.iter().find(|(n, _)| n == "mask") {
                    Some((_, s)) if s.len() == 1 && s[0] > 0 => s[0],
                    _ => return None,
                };
                let fits = ts.len() == self.names.len()
                    && ts.iter().zip(&self.names).all(|((n, s), want)| {
                        n == want && (n == "mask" || (s.len() == 2 && s[0] == t && s[1] == self.width))
                    });
                fits.then_some(t)
            }
        }
    }
}
