//! Audio front end: decode, downmix, resample to 16 kHz, SeamlessM4T fbank. (to be written)
