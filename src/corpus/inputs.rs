//! Inputs of a corpus run: files, directories and manifests expanded into one list (see the module docs of
//! [`super`]), each with where its output goes; and the shard a task takes of that list.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Key of the audio path in a JSONL manifest's objects unless another is named.
pub const DEFAULT_MANIFEST_KEY: &str = "audio";

/// Extensions a directory scan picks up (what the decoder reads: symphonia's wav, flac, mp3, ogg/vorbis).
pub const AUDIO_EXTENSIONS: &[&str] = &["wav", "wave", "flac", "mp3", "ogg", "oga"];

/// One input file and where its output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    /// Output path relative to the output directory, without extension.
    pub rel: PathBuf,
    /// Named directly on the command line (output `<stem>.<ext>`).
    pub direct: bool,
    /// A JSONL manifest line's other keys (`id`, `text`, `speaker`, …), carried into the run's index.
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Input {
    /// `dir/rel.ext`.
    pub fn output_path(&self, dir: &Path, ext: &str) -> PathBuf {
        let mut name = self.rel.as_os_str().to_os_string();
        name.push(".");
        name.push(ext);
        dir.join(name)
    }
}

fn has_audio_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.iter().any(|a| a.eq_ignore_ascii_case(e)))
}

/// `p` without its extension.
fn strip_ext(p: &Path) -> PathBuf {
    p.with_extension("")
}

/// Lexically normalized `p` (`.` dropped, `x/..` folded); None if it climbs above its start.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Where the output of `path` goes when it should mirror its place under `base`: the relative path if `path` is
/// below `base`, else its absolute path without the root (never anything that could climb out of the output dir).
fn mirror_rel(path: &Path, base: &Path) -> Result<PathBuf> {
    let rel = path
        .strip_prefix(base)
        .ok()
        .and_then(normalize)
        .filter(|r| r.components().all(|c| matches!(c, Component::Normal(_))) && r.file_name().is_some());
    let rel = match rel {
        Some(r) => r,
        None => {
            let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
            let abs = normalize(&abs).unwrap_or(abs);
            abs.components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect::<PathBuf>()
        }
    };
    Ok(strip_ext(&rel))
}

/// Every audio file below `dir`, sorted by path, each mirroring its place under `dir`. Symbolic links are followed;
/// one that points to an ancestor directory is not entered again (every file below it is listed already), and a
/// dangling one named like an audio file is listed, so that it fails alone as that input ("not found") while the
/// run goes on. Any other error stops the scan, since files would be missing without a word: a directory that
/// cannot be read, or a dangling link of another name (it may have been a directory: an unmounted disk).
pub fn scan_dir(dir: &Path) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    let input = |path: &Path| Input {
        path: path.to_path_buf(),
        rel: strip_ext(path.strip_prefix(dir).expect("walkdir yields paths below its root")),
        direct: false,
        meta: None,
    };
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.loop_ancestor().is_some() => continue,
            Err(e) => match e.path().filter(|p| dangling_link(p, &e) && has_audio_extension(p)) {
                Some(p) => {
                    out.push(input(p));
                    continue;
                }
                None => {
                    let p = e.path().unwrap_or(dir);
                    return Err(Error::Invalid(format!("{}: cannot scan: {e}", p.display())));
                }
            },
        };
        if entry.file_type().is_file() && has_audio_extension(entry.path()) {
            out.push(input(entry.path()));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Whether the scan error `e` at `p` is a symbolic link whose target does not exist.
fn dangling_link(p: &Path, e: &walkdir::Error) -> bool {
    e.io_error().is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) && p.is_symlink()
}

/// The inputs a manifest lists (see the module docs for the three formats); `key` names the audio path's key in
/// a JSONL manifest ([`DEFAULT_MANIFEST_KEY`] by default).
pub fn read_manifest(manifest: &Path, key: &str) -> Result<Vec<Input>> {
    let text = std::fs::read_to_string(manifest).map_err(|e| Error::io(manifest, e))?;
    let folder = manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    let Some(&(_, first)) = lines.first() else {
        return Ok(Vec::new());
    };
    let jsonl =
        manifest.extension().is_some_and(|e| e.eq_ignore_ascii_case("jsonl")) || first.trim_start().starts_with('{');
    if jsonl {
        return read_jsonl(manifest, folder, &lines, key);
    }
    // fairseq TSV: a first line without a tab, every other line with one.
    let tsv = !first.contains('\t') && lines.len() > 1 && lines[1..].iter().all(|(_, l)| l.contains('\t'));
    let (base, entries) = if tsv {
        (folder.join(first.trim()), &lines[1..])
    } else {
        (folder.to_path_buf(), &lines[..])
    };
    let mut out = Vec::with_capacity(entries.len());
    for &(n, line) in entries {
        let rel = if tsv {
            let mut cols = line.split('\t');
            let rel = cols.next().unwrap_or("");
            if let Some(samples) = cols.next() {
                if samples.trim().parse::<u64>().is_err() {
                    return Err(Error::Invalid(format!(
                        "{} line {n}: fairseq manifest line must be `relative/path<TAB>num_samples`, got {line:?}",
                        manifest.display()
                    )));
                }
            }
            rel
        } else {
            line.trim()
        };
        if rel.is_empty() {
            return Err(Error::Invalid(format!("{} line {n}: empty path", manifest.display())));
        }
        let path = base.join(rel);
        let rel = mirror_rel(&path, &base)?;
        out.push(Input {
            path,
            rel,
            direct: false,
            meta: None,
        });
    }
    Ok(out)
}

/// JSONL: one object per line, the audio path under `key` (relative to the manifest's folder); a string or
/// integer `id` names the output (a relative path without `..`), else the output mirrors the path as for a plain
/// list. The object's other keys are kept in [`Input::meta`].
fn read_jsonl(manifest: &Path, folder: &Path, lines: &[(usize, &str)], key: &str) -> Result<Vec<Input>> {
    let bad = |n: usize, what: String| Error::Invalid(format!("{} line {n}: {what}", manifest.display()));
    let mut out = Vec::with_capacity(lines.len());
    for &(n, line) in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(n, format!("not a JSON object ({e})")))?;
        let serde_json::Value::Object(mut meta) = value else {
            return Err(bad(n, "not a JSON object".into()));
        };
        let audio = match meta.remove(key) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            Some(other) => return Err(bad(n, format!("`{key}` must be a non-empty path string, got {other}"))),
            None => {
                return Err(bad(
                    n,
                    format!("no `{key}` key (the audio path; the manifest key option names another)"),
                ))
            }
        };
        let path = folder.join(&audio);
        let rel = match meta.get("id") {
            None => mirror_rel(&path, folder)?,
            Some(id) => {
                let id = match id {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(v) if v.is_u64() || v.is_i64() => v.to_string(),
                    other => return Err(bad(n, format!("`id` must be a string or an integer, got {other}"))),
                };
                Some(PathBuf::from(&id))
                    .filter(|p| !id.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))))
                    .ok_or_else(|| bad(n, format!("`id` {id:?} must be a relative path without `.` or `..`")))?
            }
        };
        out.push(Input {
            path,
            rel,
            direct: false,
            meta: Some(meta),
        });
    }
    Ok(out)
}

/// Files, directories (expanded) and a manifest (with its JSONL key), in that order, as one list; refuses two
/// inputs that would write the same output (e.g. `a.wav` and `a.flac` in one folder, or two files named directly
/// with the same stem). Inputs that expand to no file at all are [`Error::NoInputs`], naming each.
pub fn collect(args: &[PathBuf], manifest: Option<(&Path, &str)>) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    let mut empty: Vec<String> = Vec::new();
    for a in args {
        if a.is_dir() {
            let found = scan_dir(a)?;
            if found.is_empty() {
                empty.push(format!(
                    "{} (a directory with no audio file below it: {})",
                    a.display(),
                    AUDIO_EXTENSIONS.join(", ")
                ));
            }
            out.extend(found);
        } else {
            let stem = a
                .file_stem()
                .ok_or_else(|| Error::Invalid(format!("{}: input has no file name", a.display())))?;
            out.push(Input {
                path: a.clone(),
                rel: PathBuf::from(stem),
                direct: true,
                meta: None,
            });
        }
    }
    if let Some((m, key)) = manifest {
        let listed = read_manifest(m, key)?;
        if listed.is_empty() {
            empty.push(format!("{} (a manifest listing no file)", m.display()));
        }
        out.extend(listed);
    }
    if out.is_empty() {
        return Err(Error::NoInputs(format!(
            "no audio file to process: {}",
            empty.join("; ")
        )));
    }
    Ok(out)
}

/// Two inputs with the same output path (`dir/rel.ext`) are an error naming both, before any work.
pub fn check_collisions(inputs: &[Input], dir: &Path, ext: &str) -> Result<()> {
    let mut seen: HashMap<&Path, &Input> = HashMap::new();
    for input in inputs {
        if let Some(first) = seen.insert(&input.rel, input) {
            let what = if first.direct && input.direct {
                "same file stem"
            } else {
                "same output path"
            };
            return Err(Error::Invalid(format!(
                "{} and {}: {what}, both would write {}",
                first.path.display(),
                input.path.display(),
                input.output_path(dir, ext).display()
            )));
        }
    }
    Ok(())
}

/// How the input list is split into shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardMode {
    /// fairseq's `get_shard_range`: consecutive runs of the list.
    Contiguous,
    /// Items `index, index + n, index + 2n, …`.
    Strided,
}

/// fairseq `get_shard_range(tot, nshard, rank)`: `round(tot / nshard * rank) .. round(tot / nshard * (rank+1))`,
/// with Python's round (half to even) on the same f64 values.
pub fn shard_range(total: usize, num_shards: usize, index: usize) -> std::ops::Range<usize> {
    let at = |r: usize| (total as f64 / num_shards as f64 * r as f64).round_ties_even() as usize;
    at(index).min(total)..at(index + 1).min(total)
}

/// Indices into a list of `total` items that shard `index` of `num_shards` takes.
pub fn shard(total: usize, num_shards: usize, index: usize, mode: ShardMode) -> Result<Vec<usize>> {
    if num_shards == 0 || index >= num_shards {
        return Err(Error::Invalid(format!(
            "shard index {index} is out of range for {num_shards} shard(s) (0 ≤ index < shards)"
        )));
    }
    Ok(match mode {
        ShardMode::Contiguous => shard_range(total, num_shards, index).collect(),
        ShardMode::Strided => (index..total).step_by(num_shards).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fairseq_shard_ranges() {
        // Values from fairseq's get_shard_range in Python: tot=10, nshard=4 → 0..2, 2..5, 5..8, 8..10
        // (2.5 rounds to 2, 7.5 to 8).
        let r: Vec<_> = (0..4).map(|i| shard_range(10, 4, i)).collect();
        assert_eq!(r, vec![0..2, 2..5, 5..8, 8..10]);
        for total in 0..60 {
            for n in 1..9 {
                for mode in [ShardMode::Contiguous, ShardMode::Strided] {
                    let mut all: Vec<usize> = (0..n).flat_map(|i| shard(total, n, i, mode).unwrap()).collect();
                    all.sort();
                    assert_eq!(
                        all,
                        (0..total).collect::<Vec<_>>(),
                        "total {total}, {n} shards, {mode:?}"
                    );
                }
            }
        }
        assert!(shard(5, 2, 2, ShardMode::Contiguous).is_err());
        assert!(shard(5, 0, 0, ShardMode::Strided).is_err());
    }

    #[test]
    fn mirror_never_climbs_out() {
        let base = Path::new("/data/corpus");
        assert_eq!(
            mirror_rel(Path::new("/data/corpus/a/b.wav"), base).unwrap(),
            PathBuf::from("a/b")
        );
        assert_eq!(
            mirror_rel(Path::new("/data/corpus/../other/x.flac"), base).unwrap(),
            PathBuf::from("data/other/x")
        );
        assert_eq!(
            mirror_rel(Path::new("/elsewhere/y.wav"), base).unwrap(),
            PathBuf::from("elsewhere/y")
        );
    }
}
