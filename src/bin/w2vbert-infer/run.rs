//! A corpus run: inputs → this shard → skip complete outputs → reader thread (decode + fbank, bounded queue) →
//! packed encoder calls on this thread → writer thread (atomic writes) → summary.

use crate::plan::{expected, is_complete, plan, Payload};
use crate::report::{file_pages_mapped, peak_rss_bytes, Failure, Progress, Summary};
use crate::{Format, RunArgs, ShardModeArg, EXIT_ERROR, EXIT_SOME_FAILED};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use w2vbert::audio::{self, Features, FEATURE_DIM};
use w2vbert::corpus::{self, Input, ShardMode};
use w2vbert::output;
use w2vbert::pipeline::Extractor;
use w2vbert::{Error, Result};

/// Decoded inputs waiting for the encoder (features of a 10 s file are ~320 KB).
const READ_AHEAD: usize = 16;
/// Packs waiting for the writer.
const WRITE_QUEUE: usize = 2;
/// Audio sample rate after loading.
const RATE: f64 = 16_000.0;

pub fn main(args: &RunArgs) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_ERROR
        }
    }
}

struct Job {
    input: Input,
    out: PathBuf,
}

/// One input after the reader: its features (or why it failed) and the time each stage took.
struct Decoded {
    job: usize,
    result: Result<Features>,
    audio_s: f64,
    decode_s: f64,
    fbank_s: f64,
}

/// Writer's queue item.
struct Written {
    job: usize,
    payload: Payload,
    audio_s: f64,
}

/// Counters shared by the encoder and writer threads.
struct State {
    summary: Summary,
    progress: Progress,
}

impl State {
    fn tick(&mut self) {
        let s = &self.summary;
        let handled = s.done + s.failed.len();
        let (failed, audio) = (s.failed.len(), s.audio_seconds);
        self.progress.update(handled, failed, audio);
    }

    fn fail(&mut self, path: &Path, e: &Error) {
        self.progress.println(&format!("error: {e}"));
        self.summary.failed.push(Failure {
            path: path.display().to_string(),
            reason: e.to_string(),
        });
        self.tick();
    }
}

fn check_output_dir(dir: &Path) -> Result<()> {
    let mut probe_dir = dir;
    while !probe_dir.exists() {
        probe_dir = match probe_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
    }
    if !probe_dir.is_dir() {
        return Err(Error::Invalid(format!("{}: not a directory", probe_dir.display())));
    }
    let probe = probe_dir.join(format!(".w2vbert-dry-run-probe.{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| Error::io(probe_dir, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn run(args: &RunArgs) -> Result<i32> {
    let start = Instant::now();
    if let Some(n) = args.threads {
        if n == 0 {
            return Err(Error::Invalid("--threads must be at least 1".into()));
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| Error::Invalid(format!("cannot start {n} threads: {e}")))?;
    }
    if args.batch_frames == 0 {
        return Err(Error::Invalid("--batch-frames must be at least 1".into()));
    }
    if let Some(s) = args.max_seconds {
        if !(s > 0.0 && s.is_finite()) {
            return Err(Error::Invalid(format!(
                "--max-seconds {s}: must be a positive number of seconds"
            )));
        }
    }
    let out_dir = args.output_dir.as_deref().expect("checked by main");
    let plan = plan(args)?;
    let ext = plan.ext();
    let all = corpus::collect(&args.inputs, args.manifest.as_deref())?;
    corpus::check_collisions(&all, out_dir, ext)?;
    let mode = match args.shard_mode {
        ShardModeArg::Contiguous => ShardMode::Contiguous,
        ShardModeArg::Strided => ShardMode::Strided,
    };
    let picked = corpus::shard(all.len(), args.num_shards, args.shard_index, mode)?;
    let jobs: Vec<Job> = picked
        .into_iter()
        .map(|i| {
            let input = all[i].clone();
            let out = input.output_path(out_dir, ext);
            Job { input, out }
        })
        .collect();
    // Fail fast by default only in today's form (every input a file named on the command line).
    let fail_fast = args.fail_fast || (!args.keep_going && args.manifest.is_none() && all.iter().all(|i| i.direct));

    let ex = match &plan.request {
        None => None,
        Some(req) => {
            let t = Instant::now();
            let ex = Extractor::load_with(&args.checkpoint, req, args.stats.as_deref(), args.precision)?;
            if ex.precision() != args.precision {
                eprintln!(
                    "warning: --precision {} is not available on this CPU ({}); running {}",
                    args.precision,
                    w2vbert::kernels::bf16::describe(),
                    ex.precision()
                );
            }
            if args.verbose {
                eprintln!("{}", w2vbert::kernels::cpu::describe());
                eprintln!("precision {}; {}", ex.precision(), w2vbert::kernels::bf16::describe());
                let cfg = &ex.model.config;
                let mapped = match file_pages_mapped() {
                    Some((file, huge)) if file > 0 => format!(
                        "; file pages mapped {:.2} GB, {:.0} % as 2 MiB pages",
                        file as f64 / 1e9,
                        100.0 * huge as f64 / file as f64
                    ),
                    _ => String::new(),
                };
                eprintln!(
                    "{}: {} of {} layers loaded (hidden {}, {} heads), {:.0} ms{mapped}",
                    args.checkpoint.display(),
                    ex.model.layers.len(),
                    cfg.num_hidden_layers,
                    cfg.hidden_size,
                    cfg.num_attention_heads,
                    t.elapsed().as_secs_f64() * 1e3
                );
            }
            Some(ex)
        }
    };
    let width = ex.as_ref().map_or(FEATURE_DIM, |e| e.model.config.hidden_size);
    let (names, width) = expected(&plan, width);
    let complete: Vec<bool> = jobs
        .iter()
        .map(|j| !args.force && is_complete(&j.out, plan.format, &names, width))
        .collect();

    if args.dry_run {
        check_output_dir(out_dir)?;
        for (j, &c) in jobs.iter().zip(&complete) {
            println!(
                "{}\t{}\t{}",
                j.input.path.display(),
                j.out.display(),
                if c { "skip" } else { "todo" }
            );
        }
        let n_skip = complete.iter().filter(|&&c| c).count();
        eprintln!(
            "dry run: {} input(s) in shard {} of {} ({} in all), {} complete (would be skipped), {} to compute; {}; \
             output directory {} is writable",
            jobs.len(),
            args.shard_index,
            args.num_shards,
            all.len(),
            n_skip,
            jobs.len() - n_skip,
            match &ex {
                Some(ex) => format!("checkpoint and stats OK ({} layers loaded)", ex.model.layers.len()),
                None => "features only: no checkpoint".into(),
            },
            out_dir.display()
        );
        return Ok(0);
    }

    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    // Temporaries a killed run left for this shard's outputs.
    let mut by_dir: BTreeMap<PathBuf, HashSet<OsString>> = BTreeMap::new();
    for j in &jobs {
        let dir = j.out.parent().map(Path::to_path_buf).unwrap_or_default();
        by_dir
            .entry(dir)
            .or_default()
            .insert(j.out.file_name().unwrap_or_default().to_os_string());
    }
    let mut stale = 0;
    for (dir, names) in &by_dir {
        stale += output::remove_stale_temps(dir, names)?;
    }
    if stale > 0 && args.verbose {
        eprintln!("removed {stale} temporary file(s) left by an interrupted run");
    }

    let pending: Vec<usize> = (0..jobs.len()).filter(|&i| !complete[i]).collect();
    let state = Arc::new(Mutex::new(State {
        summary: Summary {
            files: jobs.len(),
            skipped: jobs.len() - pending.len(),
            output_dir: out_dir.display().to_string(),
            shard_index: args.shard_index,
            num_shards: args.num_shards,
            ..Default::default()
        },
        progress: Progress::new(args.quiet, pending.len()),
    }));
    let jobs = Arc::new(jobs);
    let stop = Arc::new(AtomicBool::new(false));

    let (read_tx, read_rx) = sync_channel::<Decoded>(READ_AHEAD);
    let reader = spawn_reader(args, jobs.clone(), pending.clone(), stop.clone(), read_tx);
    let (write_tx, write_rx) = sync_channel::<Written>(WRITE_QUEUE);
    let writer = spawn_writer(
        jobs.clone(),
        plan.format,
        state.clone(),
        stop.clone(),
        fail_fast,
        args.verbose,
        write_rx,
    );

    let attempted = encode_loop(
        ex.as_ref(),
        &jobs,
        args.batch_frames,
        fail_fast,
        &stop,
        &state,
        read_rx,
        write_tx,
    );
    reader.join().expect("reader thread panicked");
    writer.join().expect("writer thread panicked");

    let mut st = state.lock().expect("state lock");
    st.progress.finish();
    let s = &mut st.summary;
    s.not_run = pending.len().saturating_sub(attempted.max(s.done + s.failed.len()));
    s.wall_seconds = start.elapsed().as_secs_f64();
    s.real_time_factor = if s.audio_seconds > 0.0 {
        s.wall_seconds / s.audio_seconds
    } else {
        0.0
    };
    s.peak_rss_bytes = peak_rss_bytes();
    if args.json {
        println!("{}", serde_json::to_string(&*s).expect("summary serializes"));
    }
    if !args.quiet {
        eprintln!("{}", s.line());
    }
    if args.verbose {
        // scripts/fullsize_parity.py reads this line.
        if let Some(b) = s.peak_rss_bytes {
            eprintln!("peak RSS {:.2} GB", b as f64 / 1e9);
        }
    }
    Ok(if s.failed.is_empty() {
        0
    } else if fail_fast {
        EXIT_ERROR
    } else {
        EXIT_SOME_FAILED
    })
}

/// Decode + fbank of the pending inputs, in order, into a bounded queue (so it runs ahead of the encoder by at
/// most [`READ_AHEAD`] inputs).
fn spawn_reader(
    args: &RunArgs,
    jobs: Arc<Vec<Job>>,
    pending: Vec<usize>,
    stop: Arc<AtomicBool>,
    tx: SyncSender<Decoded>,
) -> std::thread::JoinHandle<()> {
    let pre = if args.indextts2_speaker_prompt {
        audio::Preprocess::Indextts2SpeakerPrompt
    } else {
        audio::Preprocess::Direct16k
    };
    let max_samples = args.max_seconds.map(|s| (s * RATE).round() as usize);
    std::thread::spawn(move || {
        for job in pending {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let path = &jobs[job].input.path;
            let t0 = Instant::now();
            let samples = if path.is_dir() {
                Err(Error::audio(path, "not a regular file"))
            } else if max_samples.is_some_and(|m| m < audio::MAX_AUDIO_SECONDS as usize * 16_000) {
                pre.load_prefix(path)
            } else {
                pre.load(path)
            };
            let decode_s = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let mut audio_s = 0.0;
            let result = samples.and_then(|mut x| {
                if let Some(m) = max_samples {
                    x.truncate(m);
                }
                audio_s = x.len() as f64 / RATE;
                audio::features_from_samples(&x, path)
            });
            let msg = Decoded {
                job,
                result,
                audio_s,
                decode_s,
                fbank_s: t1.elapsed().as_secs_f64(),
            };
            if tx.send(msg).is_err() {
                break;
            }
        }
    })
}

/// Writes results as they come; a write error is that input's failure.
fn spawn_writer(
    jobs: Arc<Vec<Job>>,
    format: Format,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    fail_fast: bool,
    verbose: bool,
    rx: Receiver<Written>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // Everything the encoder hands over is written (it stops sending on a bad input), unless a write fails
        // while failing fast: then the rest is dropped.
        let mut failed_fast = false;
        for w in rx {
            if failed_fast {
                continue;
            }
            let job = &jobs[w.job];
            let t = Instant::now();
            if let Some(dir) = job.out.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let r = w.payload.write(&job.out, format);
            let dt = t.elapsed().as_secs_f64();
            let mut st = state.lock().expect("state lock");
            st.summary.stages.write += dt;
            match r {
                Ok(()) => {
                    st.summary.done += 1;
                    st.summary.audio_seconds += w.audio_s;
                    st.summary.frames += w.payload.t();
                    if verbose {
                        st.progress.println(&format!(
                            "{} -> {}: {} frames, {:.2} s of audio",
                            job.input.path.display(),
                            job.out.display(),
                            w.payload.t(),
                            w.audio_s
                        ));
                    }
                    st.tick();
                }
                Err(e) => {
                    st.fail(&job.input.path, &e);
                    if fail_fast {
                        stop.store(true, Ordering::Relaxed);
                        failed_fast = true;
                    }
                }
            }
        }
    })
}

/// Pack decoded inputs up to `batch_frames` frames, run the encoder once per pack, hand results to the writer.
/// Returns how many inputs were taken from the reader.
#[allow(clippy::too_many_arguments)]
fn encode_loop(
    ex: Option<&Extractor>,
    jobs: &[Job],
    batch_frames: usize,
    fail_fast: bool,
    stop: &AtomicBool,
    state: &Mutex<State>,
    rx: Receiver<Decoded>,
    tx: SyncSender<Written>,
) -> usize {
    let mut pack: Vec<(usize, Features, f64)> = Vec::new();
    let mut attempted = 0;
    let flush = |pack: &mut Vec<(usize, Features, f64)>| -> bool {
        if pack.is_empty() {
            return true;
        }
        let (meta, feats): (Vec<(usize, f64)>, Vec<Features>) = std::mem::take(pack)
            .into_iter()
            .map(|(job, f, a)| ((job, a), f))
            .unzip();
        let payloads: Vec<Payload> = match ex {
            None => feats.into_iter().map(Payload::Features).collect(),
            Some(ex) => {
                let t = Instant::now();
                let result = ex.run_batch(&feats);
                state.lock().expect("state lock").summary.stages.encoder += t.elapsed().as_secs_f64();
                match result {
                    Ok(outs) => outs.into_iter().map(Payload::Encoded).collect(),
                    Err(e) => {
                        let mut st = state.lock().expect("state lock");
                        for (job, _) in &meta {
                            st.fail(&jobs[*job].input.path, &e);
                        }
                        return !fail_fast;
                    }
                }
            }
        };
        for ((job, audio_s), payload) in meta.into_iter().zip(payloads) {
            if tx.send(Written { job, payload, audio_s }).is_err() {
                return false;
            }
        }
        true
    };
    let mut frames = 0;
    for d in rx {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        attempted += 1;
        {
            let mut st = state.lock().expect("state lock");
            st.summary.stages.decode += d.decode_s;
            st.summary.stages.fbank += d.fbank_s;
        }
        match d.result {
            Err(e) => {
                state.lock().expect("state lock").fail(&jobs[d.job].input.path, &e);
                if fail_fast {
                    // Inputs before the bad one are still computed and written, as a one-at-a-time run would.
                    flush(&mut pack);
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
            Ok(f) => {
                let limit = if ex.is_some() { batch_frames } else { 1 };
                if !pack.is_empty() && frames + f.t > limit {
                    if !flush(&mut pack) {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    frames = 0;
                }
                frames += f.t;
                pack.push((d.job, f, d.audio_s));
            }
        }
    }
    if !stop.load(Ordering::Relaxed) && !flush(&mut pack) {
        stop.store(true, Ordering::Relaxed);
    }
    attempted
}
