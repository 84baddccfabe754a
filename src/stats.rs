//! IndexTTS2 / MaskGCT semantic normalization (`wav2vec2bert_stats`):
//! `semantic = (hidden_states[17] - mean) / sqrt(var)`, per channel, no epsilon.
//!
//! IndexTTS2 (`indextts/infer_v2.py`, `build_semantic_model`) loads a torch dict `{mean, var}` of `[1024]`
//! f32 and computes `std = torch.sqrt(var)`, then `(feat - mean) / std`. Here the file is safetensors
//! (`scripts/stats_pt_to_safetensors.py` converts the .pt) holding `mean` and `var`, or `mean` and `std`.
//! Anything missing, ambiguous or non-finite is an error: a silent fallback to 0 / 1 would produce features
//! that look plausible and are wrong.

use crate::error::{Error, Result};
use crate::weights::Weights;
use std::path::{Path, PathBuf};

/// File name of the stats looked for next to the weights when none is given.
pub const DEFAULT_STATS_FILE: &str = "wav2vec2bert_stats.safetensors";

/// What the stats are and how to make them, said where they are missing.
pub const STATS_HINT: &str = "semantic features need IndexTTS2's wav2vec2bert_stats (mean, var): convert \
wav2vec2bert_stats.pt with scripts/stats_pt_to_safetensors.py (see checkpoints/README.md) and give that file, or \
ask for raw hidden states (no normalization)";

/// The stats file of a checkpoint: `explicit` if given, else `<checkpoint>/wav2vec2bert_stats.safetensors`;
/// [`Error::NotFound`] if that is not a file.
pub fn locate(checkpoint: &Path, explicit: Option<&Path>) -> Result<PathBuf> {
    let p = explicit.map_or_else(|| checkpoint.join(DEFAULT_STATS_FILE), Path::to_path_buf);
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error::not_found(p, STATS_HINT))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SemanticStats {
    mean: Vec<f32>, // [dim]
    std: Vec<f32>,  // [dim], finite and > 0
}

impl SemanticStats {
    /// Loads `mean` + (`var` | `std`) of shape `[dim]` (F32, F16 or BF16) from a safetensors file.
    pub fn load(path: &Path, dim: usize) -> Result<Self> {
        Self::from_weights(&Weights::open(path)?, dim)
    }

    /// [`SemanticStats::load`] on an opened file (e.g. [`Weights::from_bytes`]); errors name `w.path()`.
    pub fn from_weights(w: &Weights, dim: usize) -> Result<Self> {
        let path = w.path();
        if dim == 0 {
            return Err(Error::Invalid(format!(
                "{}: stats dimension must be > 0",
                path.display()
            )));
        }
        if !w.contains("mean") {
            return Err(Error::tensor(
                path,
                "mean",
                "missing: a stats file needs `mean` and `var` (or `std`)",
            ));
        }
        let mean = w.get("mean", &[dim])?.into_vec();
        match (w.contains("var"), w.contains("std")) {
            (true, true) => Err(Error::tensor(
                path,
                "std",
                "both `var` and `std` are present; ambiguous, keep exactly one",
            )),
            (false, false) => Err(Error::tensor(
                path,
                "var",
                "missing: neither `var` nor `std` is present",
            )),
            (true, false) => Self::from_mean_var(mean, w.get("var", &[dim])?.into_vec(), path),
            (false, true) => Self::from_mean_std(mean, w.get("std", &[dim])?.into_vec(), path),
        }
    }

    /// `std = sqrt(var)` in f32, as `torch.sqrt` does (correctly rounded, no epsilon). `origin` names the
    /// source in errors.
    pub fn from_mean_var(mean: Vec<f32>, var: Vec<f32>, origin: &Path) -> Result<Self> {
        check_len(&mean, &var, "var", origin)?;
        check_finite(&mean, "mean", origin)?;
        check_finite(&var, "var", origin)?;
        if let Some(i) = var.iter().position(|&v| v < 0.0) {
            return Err(Error::tensor(
                origin,
                "var",
                format!("negative variance {} at index {i}", var[i]),
            ));
        }
        if let Some(i) = var.iter().position(|&v| v == 0.0) {
            return Err(Error::tensor(
                origin,
                "var",
                format!("zero variance at index {i} (division by zero)"),
            ));
        }
        let std = var.iter().map(|v| v.sqrt()).collect();
        Ok(SemanticStats { mean, std })
    }

    /// `std` used as given.
    pub fn from_mean_std(mean: Vec<f32>, std: Vec<f32>, origin: &Path) -> Result<Self> {
        check_len(&mean, &std, "std", origin)?;
        check_finite(&mean, "mean", origin)?;
        check_finite(&std, "std", origin)?;
        if let Some(i) = std.iter().position(|&s| s <= 0.0) {
            let what = if std[i] == 0.0 {
                "zero (division by zero)"
            } else {
                "negative"
            };
            return Err(Error::tensor(
                origin,
                "std",
                format!("std {} at index {i} is {what}", std[i]),
            ));
        }
        Ok(SemanticStats { mean, std })
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// `h = (h - mean) / std` per row, two f32 roundings exactly as PyTorch's broadcast `sub` then `div`
    /// (a precomputed `1 / std` would round differently).
    ///
    /// Panics if `h.len()` is not a multiple of `dim()`: the engine sizes `h` from the same config.
    pub fn normalize_inplace(&self, h: &mut [f32] /* [t, dim] */) {
        let dim = self.dim();
        assert!(
            h.len().is_multiple_of(dim),
            "normalize_inplace: {} values are not rows of {dim}",
            h.len()
        );
        for row in h.chunks_exact_mut(dim) {
            for ((x, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x - m) / s;
            }
        }
    }
}

fn check_len(mean: &[f32], other: &[f32], name: &str, origin: &Path) -> Result<()> {
    if mean.is_empty() || mean.len() != other.len() {
        return Err(Error::tensor(
            origin,
            name,
            format!(
                "has {} values but `mean` has {} (both must be the same non-zero size)",
                other.len(),
                mean.len()
            ),
        ));
    }
    Ok(())
}

fn check_finite(v: &[f32], name: &str, origin: &Path) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::tensor(
            origin,
            name,
            format!("non-finite value {} at index {i}", v[i]),
        )),
        None => Ok(()),
    }
}
