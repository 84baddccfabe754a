//! A corpus run: the inputs → this shard → complete outputs skipped (found before any model is loaded) → a
//! reader thread (decode + fbank, bounded queue) → [`Extractor::packed`] on the calling thread → a writer thread
//! (atomic writes, the shard's index) → [`Summary`].
//!
//! Failure policy: a bad input is its own failure (reported, counted, the run goes on) unless the run fails fast,
//! in which case inputs before it are still written and the run stops there. A panic in a worker (our own code:
//! third-party decoder panics are already per-file errors, see `audio::contain`) stops the run cleanly: the
//! summary's `internal_error` names the thread and the input it was on, and no temporary file is left behind.

use super::index::{self, Status};
use super::{check_collisions, collect, shard, Input, ShardMode};
use crate::audio::{self, Features, Preprocess, SAMPLE_RATE};
use crate::config::Wav2Vec2BertConfig;
use crate::error::{panic_text, Error, Result};
use crate::model::{Checkpoint, Precision};
use crate::output::{self, Expected, Format, Payload};
use crate::pipeline::{Extractor, Request};
use serde::Serialize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::time::Instant;

/// Decoded inputs waiting for the encoder (features of a 10 s file are ~320 KB).
const READ_AHEAD: usize = 16;
/// Results waiting for the writer.
const WRITE_QUEUE: usize = 2;
/// A worker's "current input" when it has none.
const IDLE: usize = usize::MAX;

/// What to run over which inputs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Files and directories.
    pub inputs: Vec<PathBuf>,
    /// A manifest and the key of the audio path in a JSONL one.
    pub manifest: Option<(PathBuf, String)>,
    pub output_dir: PathBuf,
    pub format: Format,
    /// None: fbank features only, no model.
    pub request: Option<Request>,
    pub checkpoint: PathBuf,
    pub stats: Option<PathBuf>,
    pub precision: Precision,
    pub preprocess: Preprocess,
    /// Keep only the first seconds of each input (of the 16 kHz signal).
    pub max_seconds: Option<f64>,
    pub num_shards: usize,
    pub shard_index: usize,
    pub shard_mode: ShardMode,
    /// Recompute complete outputs too.
    pub force: bool,
    /// Frame cap of one packed encoder call.
    pub batch_frames: usize,
    /// Stop at the first failed input. None: only when every input is a file named directly (no directory, no
    /// manifest), as a one-file-at-a-time tool would.
    pub fail_fast: Option<bool>,
}

/// One input of this shard.
#[derive(Clone, Debug)]
pub struct Job {
    pub input: Input,
    pub output: PathBuf,
    /// Frames of the complete output already there (None: to compute).
    pub complete: Option<usize>,
}

/// This shard's inputs, found without loading any model.
pub struct Plan {
    pub jobs: Vec<Job>,
    /// Inputs in all shards.
    pub total: usize,
    pub expected: Expected,
    pub fail_fast: bool,
    /// Keep the shard's index: a corpus run (directories or a manifest), not files named directly.
    pub index: bool,
}

impl Plan {
    pub fn pending(&self) -> usize {
        self.jobs.iter().filter(|j| j.complete.is_none()).count()
    }
}

/// Told as the run goes (the CLI draws its progress and messages from these).
pub trait Events: Sync {
    /// The model is loaded (not called for features-only runs, nor when every output was complete).
    fn loaded(&self, _ex: &Extractor, _seconds: f64) {}
    /// Work starts on `_pending` inputs.
    fn started(&self, _pending: usize) {}
    fn written(&self, _job: &Job, _frames: usize, _audio_seconds: f64) {}
    fn failed(&self, _job: &Job, _error: &Error) {}
}

/// One failed input.
#[derive(Serialize, Debug, Clone)]
pub struct Failure {
    pub path: String,
    pub reason: String,
}

/// Seconds spent in each stage, summed over inputs. Stages overlap (reader, encoder and writer threads), so the
/// sum can exceed the wall time.
#[derive(Serialize, Debug, Default, Clone)]
pub struct Stages {
    pub load: f64,
    pub decode: f64,
    pub fbank: f64,
    pub encoder: f64,
    pub write: f64,
}

/// How a run went.
#[derive(Serialize, Debug, Default, Clone)]
pub struct Summary {
    /// Inputs in this shard.
    pub files: usize,
    /// Outputs written.
    pub done: usize,
    /// Complete outputs already there (not recomputed).
    pub skipped: usize,
    pub failed: Vec<Failure>,
    /// Inputs never attempted (the run stopped first).
    pub not_run: usize,
    /// Audio of the written outputs (after `max_seconds`), and their encoder frames (20 ms each).
    pub audio_seconds: f64,
    pub frames: usize,
    pub wall_seconds: f64,
    pub stages: Stages,
    /// wall_seconds / audio_seconds (below 1 = faster than real time).
    pub real_time_factor: f64,
    pub output_dir: String,
    pub shard_index: usize,
    pub num_shards: usize,
    /// This shard's index file (corpus runs: directories or a manifest).
    pub index: Option<String>,
    /// Whether a model was loaded (a fully resumed run loads none).
    pub model_loaded: bool,
    /// A worker died (a bug): which, on which input, and its panic message. The run stopped there.
    pub internal_error: Option<String>,
    /// The run stopped early because outputs cannot be stored (no space left, a quota, a read-only file system:
    /// [`Error::is_storage_exhausted`], or the index could not be written): that error. The outputs written are
    /// complete and listed; the inputs after it are `not_run`, and a re-run resumes from there.
    pub stopped: Option<String>,
}

impl RunOptions {
    /// This shard's inputs and which outputs are already complete, reading nothing but the inputs' list and
    /// the checkpoint's config.json. Inputs that expand to nothing are [`Error::NoInputs`].
    pub fn plan(&self) -> Result<Plan> {
        if self.batch_frames == 0 {
            return Err(Error::Invalid("the batch frame cap must be at least 1".into()));
        }
        if let Some(s) = self.max_seconds.filter(|s| !(*s > 0.0 && s.is_finite())) {
            return Err(Error::Invalid(format!(
                "max seconds {s}: must be a positive number of seconds"
            )));
        }
        let ext = self.format.ext();
        let manifest = self.manifest.as_ref().map(|(p, k)| (p.as_path(), k.as_str()));
        let all = collect(&self.inputs, manifest)?;
        check_collisions(&all, &self.output_dir, ext)?;
        let picked = shard(all.len(), self.num_shards, self.shard_index, self.shard_mode)?;
        let hidden_size = match &self.request {
            None => 0,
            Some(_) => Wav2Vec2BertConfig::load(&Checkpoint::locate(&self.checkpoint)?.config)?.hidden_size,
        };
        let expected = Expected::new(self.request.as_ref(), self.format, hidden_size);
        let jobs: Vec<Job> = picked
            .into_iter()
            .map(|i| {
                let output = all[i].output_path(&self.output_dir, ext);
                let complete = if self.force {
                    None
                } else {
                    expected.complete_frames(&output)
                };
                Job {
                    input: all[i].clone(),
                    output,
                    complete,
                }
            })
            .collect();
        let named_directly = self.manifest.is_none() && all.iter().all(|i| i.direct);
        Ok(Plan {
            jobs,
            total: all.len(),
            expected,
            fail_fast: self.fail_fast.unwrap_or(named_directly),
            index: !named_directly,
        })
    }

    /// Run `plan` (from [`RunOptions::plan`]): load the model if anything is left to compute, compute, write.
    pub fn run(&self, plan: Plan, events: &dyn Events) -> Result<Summary> {
        let start = Instant::now();
        let out_dir = &self.output_dir;
        std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
        let pending: Vec<usize> = (0..plan.jobs.len())
            .filter(|&i| plan.jobs[i].complete.is_none())
            .collect();
        // Temporaries a killed run left for this shard's outputs.
        let outputs: Vec<&Path> = plan.jobs.iter().map(|j| j.output.as_path()).collect();
        output::remove_stale_temps_of(&outputs)?;
        let index_path = index::shard_path(out_dir, self.shard_index, self.num_shards);
        let index = if plan.index {
            Some(index::Writer::create(
                &index_path,
                &self.skipped_records(&plan, &index_path)?,
            )?)
        } else {
            None
        };
        let mut summary = Summary {
            files: plan.jobs.len(),
            skipped: plan.jobs.len() - pending.len(),
            output_dir: out_dir.display().to_string(),
            shard_index: self.shard_index,
            num_shards: self.num_shards,
            index: plan.index.then(|| index_path.display().to_string()),
            ..Default::default()
        };
        if !pending.is_empty() {
            let ex = self.load(events, &mut summary)?;
            events.started(pending.len());
            let state = Mutex::new(State { summary, index });
            let run = Workers {
                opts: self,
                jobs: &plan.jobs,
                fail_fast: plan.fail_fast,
                events,
                state: &state,
                stop: AtomicBool::new(false),
            };
            let handled = run.run(ex.as_ref(), &pending);
            summary = state.into_inner().unwrap_or_else(|p| p.into_inner()).summary;
            if summary.internal_error.is_some() {
                // A writer that died mid-write leaves its temporary file.
                output::remove_stale_temps_of(&outputs)?;
            }
            summary.not_run = pending.len().saturating_sub(handled);
        }
        summary.wall_seconds = start.elapsed().as_secs_f64();
        if summary.audio_seconds > 0.0 {
            summary.real_time_factor = summary.wall_seconds / summary.audio_seconds;
        }
        Ok(summary)
    }

    /// The index's first lines: a `skipped` record per complete output, the previous run's record carried over.
    fn skipped_records(
        &self,
        plan: &Plan,
        index_path: &Path,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
        let mut before: std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>> =
            std::collections::HashMap::new();
        for r in index::read(index_path)? {
            if let Some(out) = r.get("output").and_then(|v| v.as_str()) {
                before.insert(out.to_string(), r);
            }
        }
        let mut records = Vec::new();
        for job in &plan.jobs {
            let Some(frames) = job.complete else { continue };
            let rel = job.output.strip_prefix(&self.output_dir).unwrap_or(&job.output);
            let seconds = before
                .get(&rel.display().to_string())
                .and_then(|r| r.get("seconds")?.as_f64());
            let meta = job.input.meta.as_ref();
            records.push(index::record(
                &job.input.path,
                rel,
                Some(frames),
                seconds,
                Status::Skipped,
                None,
                meta,
            ));
        }
        Ok(records)
    }

    fn load(&self, events: &dyn Events, summary: &mut Summary) -> Result<Option<Extractor>> {
        let Some(req) = &self.request else {
            return Ok(None);
        };
        let t = Instant::now();
        let ex = Extractor::load_with(&self.checkpoint, req, self.stats.as_deref(), self.precision)?;
        summary.stages.load = t.elapsed().as_secs_f64();
        summary.model_loaded = true;
        events.loaded(&ex, summary.stages.load);
        Ok(Some(ex))
    }
}

/// Counters and the index, shared by the encoder and writer threads.
struct State {
    summary: Summary,
    index: Option<index::Writer>,
}

/// One decoded input on its way to the encoder.
struct Decoded {
    job: usize,
    result: Result<Features>,
    audio_s: f64,
}

/// One result on its way to the writer.
struct Written {
    job: usize,
    payload: Payload,
    audio_s: f64,
}

/// The threads of one run.
struct Workers<'a> {
    opts: &'a RunOptions,
    jobs: &'a [Job],
    fail_fast: bool,
    events: &'a dyn Events,
    state: &'a Mutex<State>,
    stop: AtomicBool,
}

impl Workers<'_> {
    /// Reader and writer threads around the encoder on this one; returns how many inputs were handled.
    fn run(&self, ex: Option<&Extractor>, pending: &[usize]) -> usize {
        let (read_tx, read_rx) = sync_channel::<Decoded>(READ_AHEAD);
        let (write_tx, write_rx) = sync_channel::<Written>(WRITE_QUEUE);
        let (reading, writing, encoding) = (AtomicUsize::new(IDLE), AtomicUsize::new(IDLE), AtomicUsize::new(IDLE));
        let handled = std::thread::scope(|s| {
            let reader = s.spawn(|| self.read(pending, &reading, read_tx));
            let writer = s.spawn(|| self.write(&writing, write_rx));
            let encoded = catch_unwind(AssertUnwindSafe(|| self.encode(ex, read_rx, write_tx, &encoding)));
            for (what, current, result) in [
                ("reader", &reading, reader.join()),
                ("encoder", &encoding, encoded),
                ("writer", &writing, writer.join()),
            ] {
                if let Err(payload) = &result {
                    self.died(what, current.load(Ordering::Relaxed), payload.as_ref());
                }
            }
            let st = self.state();
            st.summary.done + st.summary.failed.len()
        });
        handled
    }

    /// The shared state; a worker that panicked holding it poisoned nothing we rely on (counters and the index
    /// file are updated in whole steps).
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker panicked: record which, on which input, and stop the others.
    fn died(&self, what: &str, job: usize, payload: &(dyn std::any::Any + Send)) {
        self.stop.store(true, Ordering::Relaxed);
        let on = self
            .jobs
            .get(job)
            .map_or("no input".into(), |j| j.input.path.display().to_string());
        let msg = format!("the {what} thread panicked on {on}: {}", panic_text(payload));
        self.state().summary.internal_error.get_or_insert(msg);
    }

    /// Decode + fbank of the pending inputs, in order, into a bounded queue.
    fn read(&self, pending: &[usize], current: &AtomicUsize, tx: SyncSender<Decoded>) {
        let pre = self.opts.preprocess;
        let max_samples = self
            .opts
            .max_seconds
            .map(|s| (s * f64::from(SAMPLE_RATE)).round() as usize);
        let prefix = max_samples.is_some_and(|m| m < audio::MAX_AUDIO_SECONDS as usize * SAMPLE_RATE as usize);
        for &job in pending {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            current.store(job, Ordering::Relaxed);
            let path = &self.jobs[job].input.path;
            failpoint("reader", path);
            let t0 = Instant::now();
            let samples = if path.is_dir() {
                Err(Error::audio(path, "not a regular file"))
            } else if prefix {
                pre.load_prefix(path)
            } else {
                pre.load(path)
            };
            let t1 = Instant::now();
            let mut audio_s = 0.0;
            let result = samples.and_then(|mut x| {
                x.truncate(max_samples.unwrap_or(usize::MAX));
                audio_s = x.len() as f64 / f64::from(SAMPLE_RATE);
                audio::features_from_samples(&x, path)
            });
            {
                let mut st = self.state();
                st.summary.stages.decode += (t1 - t0).as_secs_f64();
                st.summary.stages.fbank += t1.elapsed().as_secs_f64();
            }
            if tx.send(Decoded { job, result, audio_s }).is_err() {
                break;
            }
        }
        current.store(IDLE, Ordering::Relaxed);
    }

    /// The encoder over the decoded inputs ([`Extractor::packed`]), results to the writer; stops at the first
    /// failure when failing fast. Features-only runs hand the features on as they are.
    fn encode(&self, ex: Option<&Extractor>, rx: Receiver<Decoded>, tx: SyncSender<Written>, current: &AtomicUsize) {
        let items = rx.into_iter().map(|d| ((d.job, d.audio_s), d.result));
        let mut results: Box<dyn Iterator<Item = ((usize, f64), Result<Payload>)>> = match ex {
            None => Box::new(items.map(|(k, r)| (k, r.map(Payload::Features)))),
            Some(ex) => Box::new(PackedPayloads {
                packed: ex.packed(items, self.opts.batch_frames),
                state: self.state,
                counted: 0.0,
            }),
        };
        for ((job, audio_s), result) in &mut results {
            current.store(job, Ordering::Relaxed);
            failpoint("encoder", &self.jobs[job].input.path);
            let sent = match result {
                Ok(payload) => tx.send(Written { job, payload, audio_s }).is_ok(),
                Err(e) => {
                    self.fail(job, &e);
                    !self.fail_fast
                }
            };
            if !sent || self.stop.load(Ordering::Relaxed) {
                self.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        current.store(IDLE, Ordering::Relaxed);
    }

    /// Write results as they come; a write error is that input's failure, and stops the run when no later output
    /// could be stored either ([`Error::is_storage_exhausted`]).
    fn write(&self, current: &AtomicUsize, rx: Receiver<Written>) {
        // Everything the encoder hands over is written (it stops sending at a bad input), unless a write fails
        // while failing fast: then the rest is dropped.
        let mut failed_fast = false;
        for w in rx {
            if failed_fast {
                continue;
            }
            current.store(w.job, Ordering::Relaxed);
            let job = &self.jobs[w.job];
            failpoint("writer", &job.input.path);
            let t = Instant::now();
            let r = match job.output.parent() {
                Some(dir) => std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e)),
                None => Ok(()),
            };
            let r = r.and_then(|()| match failpoint_hit("enospc", &job.input.path) {
                true => Err(Error::io(&job.output, std::io::Error::from_raw_os_error(28))),
                false => w.payload.write(&job.output, self.opts.format),
            });
            self.state().summary.stages.write += t.elapsed().as_secs_f64();
            match r {
                Ok(()) => self.done(w.job, w.payload.t(), w.audio_s),
                Err(e) => {
                    self.fail(w.job, &e);
                    if e.is_storage_exhausted() {
                        self.stopped(&e.to_string());
                    }
                    if self.fail_fast || e.is_storage_exhausted() {
                        self.stop.store(true, Ordering::Relaxed);
                        failed_fast = true;
                    }
                }
            }
        }
        current.store(IDLE, Ordering::Relaxed);
    }

    fn done(&self, job: usize, frames: usize, audio_s: f64) {
        let j = &self.jobs[job];
        let rel = j.output.strip_prefix(&self.opts.output_dir).unwrap_or(&j.output);
        let r = index::record(
            &j.input.path,
            rel,
            Some(frames),
            Some(audio_s),
            Status::Done,
            None,
            j.input.meta.as_ref(),
        );
        let mut st = self.state();
        st.summary.done += 1;
        st.summary.audio_seconds += audio_s;
        st.summary.frames += frames;
        let appended = st.index.as_mut().map_or(Ok(()), |i| i.append(&r));
        drop(st);
        self.events.written(j, frames, audio_s);
        if let Err(e) = appended {
            self.index_failed(&e);
        }
    }

    fn fail(&self, job: usize, e: &Error) {
        let j = &self.jobs[job];
        let rel = j.output.strip_prefix(&self.opts.output_dir).unwrap_or(&j.output);
        let why = e.to_string();
        let r = index::record(
            &j.input.path,
            rel,
            None,
            None,
            Status::Failed,
            Some(&why),
            j.input.meta.as_ref(),
        );
        let mut st = self.state();
        st.summary.failed.push(Failure {
            path: j.input.path.display().to_string(),
            reason: why,
        });
        let appended = st.index.as_mut().map_or(Ok(()), |i| i.append(&r));
        drop(st);
        self.events.failed(j, e);
        if let Err(e) = appended {
            self.index_failed(&e);
        }
    }

    /// The index cannot be written (disk full, …): the run stops rather than leave outputs unlisted.
    fn index_failed(&self, e: &Error) {
        self.stop.store(true, Ordering::Relaxed);
        self.stopped(&format!("the index could not be written: {e}"));
    }

    /// Outputs cannot be stored: the first reason is the summary's `stopped`.
    fn stopped(&self, why: &str) {
        self.state().summary.stopped.get_or_insert_with(|| why.to_string());
    }
}

/// [`Extractor::packed`]'s results as payloads, its encoder time added to the summary as it grows.
struct PackedPayloads<'a, I> {
    packed: crate::pipeline::Packed<'a, (usize, f64), I>,
    state: &'a Mutex<State>,
    counted: f64,
}

impl<I: Iterator<Item = ((usize, f64), Result<Features>)>> Iterator for PackedPayloads<'_, I> {
    type Item = ((usize, f64), Result<Payload>);

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.packed.next();
        let now = self.packed.encoder_seconds();
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .summary
            .stages
            .encoder += now - self.counted;
        self.counted = now;
        next.map(|(k, r)| (k, r.map(Payload::Encoded)))
    }
}

/// Fault injection for the tests of a dying worker: `W2VBERT_FAILPOINT=<reader|encoder|writer>:<file name>`
/// panics in that thread on that input.
fn failpoint(stage: &str, path: &Path) {
    if failpoint_hit(stage, path) {
        panic!("failpoint {stage}:{}", path.display());
    }
}

/// Whether `W2VBERT_FAILPOINT` names this stage and this input's file name: the panics of [`failpoint`], and
/// `enospc:<file name>`, whose output write fails with ENOSPC (the tests of a full disk). Unset, it costs one
/// environment lookup per input and stage.
fn failpoint_hit(stage: &str, path: &Path) -> bool {
    std::env::var("W2VBERT_FAILPOINT").is_ok_and(|spec| {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        spec.split_once(':') == Some((stage, &*name))
    })
}
