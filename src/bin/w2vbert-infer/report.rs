//! What a run tells its user: progress on stderr while it runs and the summary at the end (one line on stderr,
//! or one JSON object on stdout with `--json`).

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[derive(Serialize, Debug, Clone)]
pub struct Failure {
    pub path: String,
    pub reason: String,
}

/// Seconds spent in each stage, summed over files. Stages overlap (reader, encoder and writer threads), so the
/// sum can exceed the wall time.
#[derive(Serialize, Debug, Default, Clone)]
pub struct Stages {
    pub decode: f64,
    pub fbank: f64,
    pub encoder: f64,
    pub write: f64,
}

/// `--json`'s object.
#[derive(Serialize, Debug, Default, Clone)]
pub struct Summary {
    /// Inputs in this shard.
    pub files: usize,
    /// Outputs written.
    pub done: usize,
    /// Complete outputs already there (not recomputed).
    pub skipped: usize,
    pub failed: Vec<Failure>,
    /// Inputs never attempted because `--fail-fast` stopped the run.
    pub not_run: usize,
    /// Audio of the written outputs (after `--max-seconds`), and their encoder frames (20 ms each).
    pub audio_seconds: f64,
    pub frames: usize,
    pub wall_seconds: f64,
    pub stages: Stages,
    /// wall_seconds / audio_seconds (below 1 = faster than real time).
    pub real_time_factor: f64,
    pub peak_rss_bytes: Option<u64>,
    pub output_dir: String,
    pub shard_index: usize,
    pub num_shards: usize,
}

/// Peak resident memory of this process: Linux `VmHWM` from /proc; on macOS `getrusage`'s `ru_maxrss` (bytes
/// there); `None` elsewhere (the summary then leaves it out).
pub fn peak_rss_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        proc_kb_field(&std::fs::read_to_string("/proc/self/status").ok()?, "VmHWM")
    }
    #[cfg(target_os = "macos")]
    {
        // SAFETY: getrusage writes one rusage struct, zero-initialized here.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        (unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } == 0).then_some(u.ru_maxrss as u64)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        None
    }
}

/// Bytes of file-backed pages this process maps and how many of them are mapped as 2 MiB pages (Linux
/// `/proc/self/smaps_rollup`: `Rss - Anonymous` and `FilePmdMapped`). After loading, the checkpoint is nearly
/// all of the first. `None` off Linux (no /proc; `--verbose` then omits the line's mapping part).
#[cfg(target_os = "linux")]
pub fn file_pages_mapped() -> Option<(u64, u64)> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let field = |name| proc_kb_field(&rollup, name);
    let file = field("Rss")?.saturating_sub(field("Anonymous")?);
    Some((file, field("FilePmdMapped")?.min(file)))
}

/// See the Linux version: there is no /proc here.
#[cfg(not(target_os = "linux"))]
pub fn file_pages_mapped() -> Option<(u64, u64)> {
    None
}

/// The `name:   N kB` line of a /proc file, in bytes.
#[cfg(target_os = "linux")]
fn proc_kb_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn hms(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Progress: an indicatif bar when stderr is a terminal, a plain line every [`PLAIN_EVERY`] otherwise (Slurm and
/// Kubernetes logs), nothing with `--quiet`.
pub enum Progress {
    Off,
    Bar(ProgressBar),
    Plain {
        last: Instant,
        start: Instant,
        total: usize,
    },
}

const PLAIN_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    pub fn new(quiet: bool, total: usize) -> Self {
        if quiet || total == 0 {
            return Progress::Off;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            let style = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} files, {msg}, {elapsed_precise} elapsed, ETA {eta_precise}",
            )
            .expect("valid template");
            bar.set_style(style);
            Progress::Bar(bar)
        } else {
            let now = Instant::now();
            Progress::Plain {
                last: now,
                start: now,
                total,
            }
        }
    }

    /// `handled` of the total inputs are finished (written or failed), `audio_s` seconds of audio written.
    pub fn update(&mut self, handled: usize, failed: usize, audio_s: f64) {
        match self {
            Progress::Off => {}
            Progress::Bar(bar) => {
                bar.set_position(handled as u64);
                bar.set_message(format!("{:.3} h audio, {failed} failed", audio_s / 3600.0));
            }
            Progress::Plain { last, start, total } => {
                if last.elapsed() < PLAIN_EVERY {
                    return;
                }
                *last = Instant::now();
                let el = start.elapsed().as_secs_f64();
                let eta = if handled > 0 {
                    hms(el / handled as f64 * (*total - handled) as f64)
                } else {
                    "?".into()
                };
                eprintln!(
                    "progress: {handled}/{total} files ({failed} failed), {:.3} h audio, {} elapsed, ETA {eta}",
                    audio_s / 3600.0,
                    hms(el)
                );
            }
        }
    }

    /// Print a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match self {
            Progress::Bar(bar) => bar.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

impl Summary {
    /// The one-line account on stderr.
    pub fn line(&self) -> String {
        let mut s = format!("wrote {} file(s) to {}", self.done, self.output_dir);
        if self.num_shards > 1 {
            s += &format!(" (shard {} of {})", self.shard_index, self.num_shards);
        }
        s += &format!(
            ": {} skipped as already complete, {} failed",
            self.skipped,
            self.failed.len()
        );
        if self.not_run > 0 {
            s += &format!(", {} not run", self.not_run);
        }
        if self.audio_seconds > 0.0 {
            s += &format!(
                "; {:.1} s of audio in {:.1} s ({:.1}x real time)",
                self.audio_seconds,
                self.wall_seconds,
                self.audio_seconds / self.wall_seconds.max(1e-9)
            );
        }
        s
    }
}
