//! Panics inside third-party decoders become per-file errors.
//!
//! symphonia parses bytes from outside; where a header field reaches one of its assertions it panics instead of
//! returning an error (0.5.5: a WAV `fmt ` chunk declaring 0 Hz panics in `TimeBase::new`). [`super::header`]
//! refuses the cases we know of before symphonia sees them; this is the backstop for those we do not: a panic
//! inside [`contained`] is caught and returned as [`Error::Audio`] naming the file, the stage, the dependency
//! and its message, so one hostile file fails alone and never takes a corpus run (or a Python process) down.
//!
//! Wrapped, and only these: symphonia's probe and its packet decoding (`decode.rs`). libsoxr is C (it cannot
//! unwind) and is fed our own checked samples; our own code is never wrapped: a panic there is a bug to fix,
//! and it still aborts the thread it happens on.
//!
//! The default panic hook would print every caught panic to stderr ("thread panicked at …") as if it were a
//! crash. [`contained`] therefore installs, once per process, a hook that records the message and location of
//! a panic raised inside a contained call (into the returned error) and hands every other panic to the hook
//! that was installed before it, unchanged.

use crate::error::{panic_text, Error, Result};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

thread_local! {
    /// True while this thread runs inside [`contained`].
    static INSIDE: Cell<bool> = const { Cell::new(false) };
    /// What the hook recorded of the last contained panic on this thread: "message (at file:line:col)".
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if INSIDE.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!(" (at {}:{})", l.file(), l.line()))
                    .unwrap_or_default();
                let text = format!("{}{at}", panic_text(info.payload()));
                CAUGHT.with(|c| *c.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

/// Run `f`, a call into the third-party decoder `dependency` on the input `path`, at `stage` ("probing the
/// container", …). A panic inside becomes `Error::Audio`: "`path`: `stage`: `dependency` panicked on this
/// input (`message` (at `file:line`)); the file is refused".
pub fn contained<T>(dependency: &str, path: &Path, stage: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    install_hook();
    let outer = INSIDE.with(|i| i.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|i| i.set(outer));
    match r {
        Ok(v) => v,
        Err(payload) => {
            let what = CAUGHT
                .with(|c| c.borrow_mut().take())
                .unwrap_or_else(|| panic_text(payload.as_ref()));
            Err(Error::audio(
                path,
                format!("{stage}: {dependency} panicked on this input ({what}); the file is refused"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_is_an_error_naming_file_stage_dependency_and_message() {
        let e = contained("somedep 1.0", Path::new("dir/x.wav"), "probing", || -> Result<()> {
            panic!("TimeBase cannot have 0 numerator or denominator")
        })
        .unwrap_err();
        let s = e.to_string();
        assert!(matches!(e, Error::Audio { .. }), "{e:?}");
        for want in [
            "dir/x.wav",
            "probing",
            "somedep 1.0",
            "TimeBase cannot have 0",
            "contain.rs:",
        ] {
            assert!(s.contains(want), "{want:?} missing from {s}");
        }
        // Values and errors pass through untouched; nesting restores the outer state.
        assert_eq!(contained("d", Path::new("p"), "s", || Ok(7)).unwrap(), 7);
        let inner = contained("d", Path::new("p"), "outer", || {
            let e = contained("d", Path::new("p"), "inner", || -> Result<()> { panic!("boom {}", 1) });
            assert!(INSIDE.with(Cell::get));
            e
        });
        assert!(inner
            .unwrap_err()
            .to_string()
            .contains("inner: d panicked on this input (boom 1"));
        assert!(!INSIDE.with(Cell::get));
    }

    #[test]
    fn panics_outside_still_unwind() {
        let r = std::thread::spawn(|| {
            let _ = contained("d", Path::new("p"), "s", || Ok(()));
            panic!("our own bug");
        })
        .join();
        assert!(r.is_err());
    }
}
