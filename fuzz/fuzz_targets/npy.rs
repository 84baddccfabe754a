#![no_main]
//! See ../entry_corpus.rs.

#[path = "../entry_corpus.rs"]
mod entry_corpus;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry_corpus::npy(data));
