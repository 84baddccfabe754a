//! Corpus runs: which files to process, where each output goes, and which share of them this task takes.
//!
//! **Inputs** are files, directories and manifests, expanded in this order into one list:
//! - a file named directly → output `<stem>.<ext>` at the top of the output directory (two such files with the
//!   same stem are refused before any work);
//! - a directory → every audio file below it (extensions [`AUDIO_EXTENSIONS`], case-insensitive; hidden
//!   entries — names starting with `.` — skipped; symlinks followed), sorted by path; output mirrors the tree:
//!   `<path relative to the directory, extension replaced>`, so `a/x.wav` and `b/x.wav` never collide;
//! - a manifest, in its line order, in one of three formats: one path per line (relative paths resolve against
//!   the manifest's folder); fairseq's TSV (`wav2vec_manifest.py`): the root directory on the first line, then
//!   `relative/path<TAB>num_samples` (resolved against the root; a relative root against the manifest's folder);
//!   or JSONL (a `.jsonl` name, or a first line starting with `{`): one object per line, the audio path under a
//!   key the caller names ([`DEFAULT_MANIFEST_KEY`]), a string or integer `id` naming the output, the other keys
//!   carried into the index. Outputs mirror the path relative to the root (TSV) or the manifest's folder (list,
//!   JSONL without `id`); a path outside it mirrors its absolute path (`/data/x.wav` → `data/x.<ext>`). Blank
//!   lines and lines starting with `#` are skipped.
//!
//! Inputs that expand to no file at all are an error ([`crate::Error::NoInputs`]).
//!
//! **Shards** ([`shard`]): shard I of N takes a deterministic part of that list, so every task
//! of a Slurm array or Kubernetes Indexed Job given the same arguments sees the same list and the N parts cover
//! it exactly once. Contiguous (default) follows fairseq's HuBERT feature dumper (`get_shard_range`):
//! shard I is `round(n/N·I) .. round(n/N·(I+1))` with Python's round-half-to-even; strided takes items
//! `I, I+N, I+2N, …` (better balanced when file lengths drift along the sorted list).

//!
//! **Runs** ([`RunOptions`]): [`RunOptions::plan`] finds this shard's inputs and the outputs already complete
//! without loading a model (a fully resumed run ends there); [`RunOptions::run`] computes and writes the rest,
//! keeping the shard's [`index`].

pub mod index;
mod inputs;
mod run;

pub use inputs::*;
pub use run::{Events, Failure, Job, Plan, RunOptions, Stages, Summary};
