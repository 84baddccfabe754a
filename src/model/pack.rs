//! Several utterances packed side by side along time into one channel-major block `[C, ΣT]`.
//!
//! Every position-wise op (LayerNorm, the projections, FFN, GLU, SiLU) computes each column from that column
//! alone, so it runs once over the whole pack; self-attention and the causal depthwise conv mix time steps, so
//! they run per segment (a segment is a column offset into the block, with row stride ΣT). No padding is ever
//! added: a pack costs the same arithmetic as its utterances run one at a time, in bigger matmuls.

/// Segment lengths of a pack, in order; segment i occupies columns `start(i)..start(i) + len(i)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pack {
    lens: Vec<usize>,
    total: usize,
}

impl Pack {
    /// A pack of segments with these lengths (ΣT = their sum).
    pub fn new(lens: Vec<usize>) -> Self {
        let total = lens.iter().sum();
        Pack { lens, total }
    }

    /// One utterance of `t` frames.
    pub fn single(t: usize) -> Self {
        Pack::new(vec![t])
    }

    /// ΣT: the pack's width in columns.
    pub fn total(&self) -> usize {
        self.total
    }

    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// `(start column, length)` of every segment.
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.lens.iter().scan(0usize, |s0, &len| {
            let r = (*s0, len);
            *s0 += len;
            Some(r)
        })
    }
}
