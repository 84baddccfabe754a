//! Consecutive utterances packed into encoder calls: the one packer behind the CLI's corpus runs and Python's
//! `semantic_batch`.

use super::{Extractor, Output};
use crate::audio::Features;
use crate::error::Result;
use std::collections::VecDeque;
use std::time::Instant;

/// The iterator [`Extractor::packed`] returns.
pub struct Packed<'a, K, I> {
    ex: &'a Extractor,
    items: I,
    cap_frames: usize,
    pack: Vec<(K, Features)>,
    frames: usize,
    ready: VecDeque<(K, Result<Output>)>,
    encoder_seconds: f64,
    done: bool,
}

impl Extractor {
    /// The results of `items`, in their order, with the encoder run on packs of consecutive items of at most
    /// `cap_frames` frames in all ([`Extractor::run_batch`]; an item longer than the cap runs alone). Each result
    /// equals [`Extractor::run`] on that item alone, bit for bit. An item that arrives as an error keeps its
    /// place and its error. A pack whose call fails is rerun item by item, so an error is its own item's and the
    /// others still get their results. `K` is the caller's key for an item (an index, a path, …).
    pub fn packed<K, I>(&self, items: I, cap_frames: usize) -> Packed<'_, K, I::IntoIter>
    where
        I: IntoIterator<Item = (K, Result<Features>)>,
    {
        Packed {
            ex: self,
            items: items.into_iter(),
            cap_frames,
            pack: Vec::new(),
            frames: 0,
            ready: VecDeque::new(),
            encoder_seconds: 0.0,
            done: false,
        }
    }
}

impl<K, I> Packed<'_, K, I> {
    /// Wall time spent in encoder calls so far.
    pub fn encoder_seconds(&self) -> f64 {
        self.encoder_seconds
    }

    fn flush(&mut self) {
        if self.pack.is_empty() {
            return;
        }
        let (keys, feats): (Vec<K>, Vec<Features>) = std::mem::take(&mut self.pack).into_iter().unzip();
        self.frames = 0;
        let t = Instant::now();
        match self.ex.run_batch(&feats) {
            Ok(outs) => self.ready.extend(keys.into_iter().zip(outs.into_iter().map(Ok))),
            Err(e) if feats.len() == 1 => {
                let k = keys.into_iter().next().expect("one key per item");
                self.ready.push_back((k, Err(e)));
            }
            Err(_) => {
                for (k, f) in keys.into_iter().zip(&feats) {
                    self.ready.push_back((k, self.ex.run(f)));
                }
            }
        }
        self.encoder_seconds += t.elapsed().as_secs_f64();
    }
}

impl<K, I: Iterator<Item = (K, Result<Features>)>> Iterator for Packed<'_, K, I> {
    type Item = (K, Result<Output>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            if self.done {
                return None;
            }
            match self.items.next() {
                None => {
                    self.done = true;
                    self.flush();
                }
                Some((k, Err(e))) => {
                    // Earlier items first, so results keep the input order.
                    self.flush();
                    self.ready.push_back((k, Err(e)));
                }
                Some((k, Ok(f))) => {
                    if !self.pack.is_empty() && self.frames + f.t > self.cap_frames {
                        self.flush();
                    }
                    self.frames += f.t;
                    self.pack.push((k, f));
                }
            }
        }
    }
}
