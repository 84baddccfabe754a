//! The index of a corpus run: what each shard wrote, for a training script to read without opening every file.
//!
//! Each shard of a corpus run (directories or a manifest as inputs) keeps
//! `<output-dir>/w2vbert-index.shard-<I>-of-<N>.jsonl`, one JSON object per input:
//! `{"input", "output" (relative to the output directory), "frames", "seconds", "status": "done" | "skipped" |
//! "failed", "error" (failed only)}` plus a JSONL manifest line's other keys (`id`, `text`, …). A run first
//! rewrites its shard's index atomically with a `skipped` record for every output already complete (carrying the
//! previous record's fields over), then appends one line per input as it finishes, each line one `write`: a
//! killed run leaves a valid index whose last line may be cut short, and readers skip such a line. [`merge`]
//! joins the shards' indexes into `<output-dir>/index.jsonl`.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the merged index [`merge`] writes.
pub const MERGED: &str = "index.jsonl";
const PREFIX: &str = "w2vbert-index.shard-";

/// Keys a record sets itself; a manifest key of the same name is not copied.
const RECORD_KEYS: [&str; 6] = ["input", "output", "frames", "seconds", "status", "error"];

/// `<dir>/w2vbert-index.shard-<index>-of-<num_shards>.jsonl`.
pub fn shard_path(dir: &Path, index: usize, num_shards: usize) -> PathBuf {
    dir.join(format!("{PREFIX}{index}-of-{num_shards}.jsonl"))
}

/// What became of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Done,
    Skipped,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }
}

/// One index line. `meta`: the manifest's other keys.
pub fn record(
    input: &Path,
    output: &Path,
    frames: Option<usize>,
    seconds: Option<f64>,
    status: Status,
    error: Option<&str>,
    meta: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("input".into(), input.display().to_string().into());
    r.insert("output".into(), output.display().to_string().into());
    r.insert("frames".into(), frames.map_or(Value::Null, Value::from));
    r.insert("seconds".into(), seconds.map_or(Value::Null, Value::from));
    r.insert("status".into(), status.as_str().into());
    if let Some(e) = error {
        r.insert("error".into(), e.into());
    }
    for (k, v) in meta.into_iter().flatten() {
        if !RECORD_KEYS.contains(&k.as_str()) {
            r.insert(k.clone(), v.clone());
        }
    }
    r
}

/// The complete records of an index file, in order (an absent file has none). A last line without its newline,
/// or that does not parse, is what a killed writer leaves: skipped. Any other bad line is an error.
pub fn read(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) if line.ends_with('\n') => out.push(m),
            _ if last => {}
            _ => return Err(Error::format(path, format!("line {}: not a JSON object", i + 1))),
        }
    }
    Ok(out)
}

/// A shard's index, open for appending.
pub struct Writer {
    path: PathBuf,
    file: File,
}

impl Writer {
    /// Start the shard's index at `path` with `first` (the already complete outputs), written atomically.
    pub fn create(path: &Path, first: &[Map<String, Value>]) -> Result<Self> {
        let mut bytes = Vec::new();
        for r in first {
            bytes.extend(line(r));
        }
        crate::output::write_atomic(path, &bytes)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Writer {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Append one record (one `write` of the whole line).
    pub fn append(&mut self, r: &Map<String, Value>) -> Result<()> {
        self.file.write_all(&line(r)).map_err(|e| Error::io(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn line(r: &Map<String, Value>) -> Vec<u8> {
    let mut b = serde_json::to_vec(r).expect("a JSON map serializes");
    b.push(b'\n');
    b
}

/// What [`merge`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged index written.
    pub path: PathBuf,
    /// Shard index files read.
    pub shard_files: usize,
    /// Complete outputs listed (done or skipped).
    pub outputs: usize,
    /// Inputs whose last record says failed.
    pub failed: Vec<(String, String)>,
    /// Shards of an `…-of-N` set with no index file (never run, or run elsewhere).
    pub missing_shards: Vec<String>,
}

/// Join every shard index in `dir` into `dir/index.jsonl` (written atomically): one line per complete output,
/// the last record of each output winning (shards in name order, lines in file order), sorted by output path.
pub fn merge(dir: &Path) -> Result<Merged> {
    let mut files: Vec<(PathBuf, usize, usize)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((i, n)) = parse_shard_name(&name) {
            files.push((entry.path(), i, n));
        }
    }
    if files.is_empty() {
        return Err(Error::NoInputs(format!(
            "{}: no shard index ({PREFIX}<I>-of-<N>.jsonl) found: was a corpus run written here?",
            dir.display()
        )));
    }
    files.sort();
    let mut last: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (path, _, _) in &files {
        for r in read(path)? {
            let out = r.get("output").and_then(Value::as_str).map(str::to_owned);
            let out = out.ok_or_else(|| Error::format(path, "a record has no string `output`"))?;
            last.insert(out, r);
        }
    }
    let mut bytes = Vec::new();
    let (mut outputs, mut failed) = (0, Vec::new());
    for (out, r) in &last {
        match r.get("status").and_then(Value::as_str) {
            Some("done" | "skipped") => {
                bytes.extend(line(r));
                outputs += 1;
            }
            _ => {
                let input = r.get("input").and_then(Value::as_str).unwrap_or(out);
                let why = r.get("error").and_then(Value::as_str).unwrap_or("failed");
                failed.push((input.to_string(), why.to_string()));
            }
        }
    }
    let path = dir.join(MERGED);
    crate::output::write_atomic(&path, &bytes)?;
    Ok(Merged {
        path,
        shard_files: files.len(),
        outputs,
        failed,
        missing_shards: missing_shards(&files),
    })
}

/// `(index, num_shards)` of a shard index file name.
fn parse_shard_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(".jsonl")?;
    let (i, n) = rest.split_once("-of-")?;
    let (i, n) = (i.parse().ok()?, n.parse().ok()?);
    (i < n).then_some((i, n))
}

fn missing_shards(files: &[(PathBuf, usize, usize)]) -> Vec<String> {
    let mut sets: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(_, i, n) in files {
        sets.entry(n).or_default().push(i);
    }
    let mut missing = Vec::new();
    for (n, have) in sets {
        missing.extend((0..n).filter(|i| !have.contains(i)).map(|i| format!("{i}-of-{n}")));
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_last_line_is_skipped_and_other_bad_lines_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("i.jsonl");
        std::fs::write(&p, "{\"output\":\"a.npy\"}\n{\"output\":\"b.n").unwrap();
        assert_eq!(read(&p).unwrap().len(), 1);
        // Complete JSON but no newline: the writer was cut before it.
        std::fs::write(&p, "{\"output\":\"a.npy\"}\n{\"output\":\"b.npy\"}").unwrap();
        assert_eq!(read(&p).unwrap().len(), 1);
        std::fs::write(&p, "{\"output\":\"a.npy\"}\nnot json\n{\"output\":\"b.npy\"}\n").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("i.jsonl") && e.contains("line 2"), "{e}");
        assert!(read(&d.path().join("absent.jsonl")).unwrap().is_empty());
    }

    #[test]
    fn shard_names_and_missing_shards() {
        assert_eq!(parse_shard_name("w2vbert-index.shard-3-of-16.jsonl"), Some((3, 16)));
        assert_eq!(parse_shard_name("w2vbert-index.shard-16-of-16.jsonl"), None);
        assert_eq!(parse_shard_name("index.jsonl"), None);
        let f = |i, n| (PathBuf::new(), i, n);
        assert_eq!(missing_shards(&[f(0, 3), f(2, 3), f(0, 1)]), vec!["1-of-3"]);
    }

    #[test]
    fn record_keeps_manifest_keys_but_not_over_its_own() {
        let mut meta = Map::new();
        meta.insert("id".into(), "spk1/u1".into());
        meta.insert("status".into(), "from the manifest".into());
        let r = record(
            Path::new("a.wav"),
            Path::new("spk1/u1.npy"),
            Some(5),
            Some(0.1),
            Status::Done,
            None,
            Some(&meta),
        );
        assert_eq!(r["id"], "spk1/u1");
        assert_eq!(r["status"], "done");
        assert_eq!(r["frames"], 5);
        assert!(!r.contains_key("error"));
    }
}
