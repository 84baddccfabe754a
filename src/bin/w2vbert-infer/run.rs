//! A corpus run from the command line: flags → [`w2vbert::corpus::RunOptions`] (the library runs it), progress
//! and messages on stderr, the summary at the end.

use crate::report::{file_pages_mapped, peak_rss_bytes, summary_line, Progress};
use crate::{FormatArg, RunArgs, ShardModeArg, EXIT_ERROR, EXIT_INTERNAL, EXIT_NO_INPUTS, EXIT_SOME_FAILED};
use serde::Serialize;
use std::sync::Mutex;
use w2vbert::audio::Preprocess;
use w2vbert::corpus::{Events, Job, Plan, RunOptions, ShardMode, Summary};
use w2vbert::output::Format;
use w2vbert::pipeline::{Extractor, Request, SEMANTIC_LAYER};
use w2vbert::{Error, Result};

pub fn main(args: &RunArgs) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                Error::NoInputs(_) => EXIT_NO_INPUTS,
                _ => EXIT_ERROR,
            }
        }
    }
}

fn run(args: &RunArgs) -> Result<i32> {
    if let Some(n) = args.threads {
        let n = w2vbert::pipeline::check_threads(n).map_err(|e| Error::Invalid(format!("--{e}")))?;
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| Error::Invalid(format!("cannot start {n} threads: {e}")))?;
    }
    let opts = options(args)?;
    let plan = opts.plan()?;
    if args.dry_run {
        return dry_run(args, &opts, &plan);
    }
    let events = Cli {
        args,
        progress: Mutex::new(Progress::new(true, 0)),
    };
    let fail_fast = plan.fail_fast;
    let summary = opts.run(plan, &events)?;
    events.progress.lock().expect("progress").finish();
    #[derive(Serialize)]
    struct Json<'a> {
        #[serde(flatten)]
        summary: &'a Summary,
        peak_rss_bytes: Option<u64>,
    }
    let peak = peak_rss_bytes();
    if args.json {
        let json = Json {
            summary: &summary,
            peak_rss_bytes: peak,
        };
        println!("{}", serde_json::to_string(&json).expect("summary serializes"));
    }
    if !args.quiet {
        eprintln!("{}", summary_line(&summary));
    }
    if let (true, Some(b)) = (args.verbose, peak) {
        // scripts/fullsize_parity.py reads this line.
        eprintln!("peak RSS {:.2} GB", b as f64 / 1e9);
    }
    Ok(if let Some(e) = &summary.internal_error {
        eprintln!("internal error: {e}; the run stopped (please report this)");
        EXIT_INTERNAL
    } else if let Some(e) = &summary.stopped {
        eprintln!("the run stopped: {e}; what was written is complete, and a re-run resumes after it");
        EXIT_ERROR
    } else if summary.failed.is_empty() {
        0
    } else if fail_fast {
        EXIT_ERROR
    } else {
        EXIT_SOME_FAILED
    })
}

/// The run the flags ask for.
fn options(args: &RunArgs) -> Result<RunOptions> {
    let (request, format) = request_and_format(args)?;
    Ok(RunOptions {
        inputs: args.inputs.clone(),
        manifest: args.manifest.clone().map(|m| (m, args.manifest_key.clone())),
        output_dir: args.output_dir.clone().expect("checked by main"),
        format,
        request,
        checkpoint: args.checkpoint.clone(),
        stats: args.stats.clone(),
        precision: args.precision,
        preprocess: if args.indextts2_speaker_prompt {
            Preprocess::Indextts2SpeakerPrompt
        } else {
            Preprocess::Direct16k
        },
        max_seconds: args.max_seconds,
        num_shards: args.num_shards,
        shard_index: args.shard_index,
        shard_mode: match args.shard_mode {
            ShardModeArg::Contiguous => ShardMode::Contiguous,
            ShardModeArg::Strided => ShardMode::Strided,
        },
        force: args.force,
        batch_frames: args.batch_frames,
        fail_fast: if args.fail_fast {
            Some(true)
        } else if args.keep_going {
            Some(false)
        } else {
            None
        },
    })
}

/// What is computed (None: fbank features only) and the file format, from the flags.
fn request_and_format(args: &RunArgs) -> Result<(Option<Request>, Format)> {
    let asked = args.format.map(|f| match f {
        FormatArg::Npy => Format::Npy,
        FormatArg::Safetensors => Format::Safetensors,
    });
    if args.features_only {
        return Ok((None, asked.unwrap_or(Format::Npy)));
    }
    if let Some(layers) = &args.layers {
        if asked == Some(Format::Npy) {
            return Err(Error::Invalid(
                "--layers writes several arrays per input: use --format safetensors (its default)".into(),
            ));
        }
        return Ok((
            Some(Request::from_layers(layers, !args.no_normalize)?),
            Format::Safetensors,
        ));
    }
    let k = args.layer;
    let format = asked.unwrap_or(Format::Npy);
    if args.no_normalize {
        return Ok((Some(Request::from_layers(&[k], false)?), format));
    }
    if k != SEMANTIC_LAYER && args.stats.is_none() {
        return Err(Error::Invalid(format!(
            "--layer {k}: the default stats are IndexTTS2's, made for hidden_states[{SEMANTIC_LAYER}]; pass \
             --no-normalize for raw hidden_states[{k}], or --stats FILE with statistics of layer {k}"
        )));
    }
    let request = Request {
        hidden_states: vec![],
        normalized: Some(k),
    };
    Ok((Some(request), format))
}

/// `--dry-run`: list this shard and check the checkpoint, stats and output directory; write nothing.
fn dry_run(args: &RunArgs, opts: &RunOptions, plan: &Plan) -> Result<i32> {
    let loaded = match &opts.request {
        Some(req) => {
            let ex = Extractor::load_with(&opts.checkpoint, req, opts.stats.as_deref(), opts.precision)?;
            format!("checkpoint and stats OK ({} layers loaded)", ex.model.layers.len())
        }
        None => "features only: no checkpoint".into(),
    };
    w2vbert::output::check_writable_dir(&opts.output_dir)?;
    for j in &plan.jobs {
        let what = if j.complete.is_some() { "skip" } else { "todo" };
        println!("{}\t{}\t{what}", j.input.path.display(), j.output.display());
    }
    let todo = plan.pending();
    eprintln!(
        "dry run: {} input(s) in shard {} of {} ({} in all), {} complete (would be skipped), {todo} to compute; \
         {loaded}; output directory {} is writable",
        plan.jobs.len(),
        args.shard_index,
        args.num_shards,
        plan.total,
        plan.jobs.len() - todo,
        opts.output_dir.display()
    );
    Ok(0)
}

/// Progress and messages on stderr.
struct Cli<'a> {
    args: &'a RunArgs,
    progress: Mutex<Progress>,
}

impl Events for Cli<'_> {
    fn loaded(&self, ex: &Extractor, seconds: f64) {
        let args = self.args;
        if ex.precision() != args.precision {
            eprintln!(
                "warning: --precision {} is not available on this CPU ({}); running {}",
                args.precision,
                w2vbert::kernels::bf16::describe(),
                ex.precision()
            );
        }
        if !args.verbose {
            return;
        }
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
            seconds * 1e3
        );
    }

    fn started(&self, pending: usize) {
        *self.progress.lock().expect("progress") = Progress::new(self.args.quiet, pending);
    }

    fn written(&self, job: &Job, frames: usize, audio_seconds: f64) {
        let mut p = self.progress.lock().expect("progress");
        if self.args.verbose {
            p.println(&format!(
                "{} -> {}: {frames} frames, {audio_seconds:.2} s of audio",
                job.input.path.display(),
                job.output.display()
            ));
        }
        p.tick(false, audio_seconds);
    }

    fn failed(&self, _job: &Job, error: &Error) {
        let mut p = self.progress.lock().expect("progress");
        p.println(&format!("error: {error}"));
        p.tick(true, 0.0);
    }
}
