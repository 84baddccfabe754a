//! What a run tells its user: progress on stderr while it runs and the summary at the end (one line on stderr,
//! or one JSON object on stdout with `--json`).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use w2vbert::corpus::Summary;

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
pub struct Progress {
    view: View,
    handled: usize,
    failed: usize,
    audio_s: f64,
}

enum View {
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
        Progress {
            view: View::new(quiet, total),
            handled: 0,
            failed: 0,
            audio_s: 0.0,
        }
    }

    /// One more input finished: failed, or written with `audio_s` seconds of audio.
    pub fn tick(&mut self, failed: bool, audio_s: f64) {
        self.handled += 1;
        self.failed += usize::from(failed);
        self.audio_s += audio_s;
        self.view.update(self.handled, self.failed, self.audio_s);
    }

    /// Print a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.view {
            View::Bar(bar) => bar.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let View::Bar(bar) = &self.view {
            bar.finish_and_clear();
        }
    }
}

impl View {
    fn new(quiet: bool, total: usize) -> Self {
        if quiet || total == 0 {
            return View::Off;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            let style = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} files, {msg}, {elapsed_precise} elapsed, ETA {eta_precise}",
            )
            .expect("valid template");
            bar.set_style(style);
            View::Bar(bar)
        } else {
            let now = Instant::now();
            View::Plain {
                last: now,
                start: now,
                total,
            }
        }
    }

    /// `handled` of the total inputs are finished (written or failed), `audio_s` seconds of audio written.
    fn update(&mut self, handled: usize, failed: usize, audio_s: f64) {
        match self {
            View::Off => {}
            View::Bar(bar) => {
                bar.set_position(handled as u64);
                bar.set_message(format!("{:.3} h audio, {failed} failed", audio_s / 3600.0));
            }
            View::Plain { last, start, total } => {
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
}

/// The one-line account of a run on stderr.
pub fn summary_line(r: &Summary) -> String {
    let mut s = format!("wrote {} file(s) to {}", r.done, r.output_dir);
    if r.num_shards > 1 {
        s += &format!(" (shard {} of {})", r.shard_index, r.num_shards);
    }
    s += &format!(": {} skipped as already complete, {} failed", r.skipped, r.failed.len());
    if r.not_run > 0 {
        s += &format!(", {} not run", r.not_run);
    }
    if r.audio_seconds > 0.0 {
        s += &format!(
            "; {:.1} s of audio in {:.1} s ({:.1}x real time)",
            r.audio_seconds,
            r.wall_seconds,
            r.audio_seconds / r.wall_seconds.max(1e-9)
        );
    }
    s
}
