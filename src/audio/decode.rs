//! Decoding with symphonia (WAV PCM/float incl. WAVE_FORMAT_EXTENSIBLE, FLAC, MP3, OGG/Vorbis) and the
//! downmix to mono.
//!
//! Integer PCM becomes f32 the way libsndfile / soundfile (and so librosa) do it: `i16 / 32768`,
//! `i24 / 2^23`, `i32 / 2^31`, `(u8 - 128) / 128`: WAV and FLAC decode bit-identically to soundfile. MP3 (with
//! gapless trimming from the LAME tag; untrimmed without one, as mpg123) and Vorbis give soundfile's sample
//! counts; the samples differ in the decoders' float rounding, rel L2 ~5e-7, max-abs <= 5e-7
//! (tests/rate_goldens.rs). Downmixing averages the channels (librosa's `to_mono`); HF's SeamlessM4T extractor
//! itself would keep only the first channel of a 2-D array.

use super::contain::contained;
use super::{header, MAX_AUDIO_SECONDS};
use crate::error::{Error, Result};
use std::path::Path;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CodecParameters, DecoderOptions, CODEC_TYPE_MP3, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// The decoder named in errors from a panic it raised ([`super::contain`]).
const DECODER: &str = "the decoder (symphonia 0.5)";

/// A decoded file: interleaved samples `[frames, channels]` at the file's own rate.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub interleaved: Vec<f32>,
    pub channels: usize,
    pub sample_rate: u32,
}

impl Decoded {
    /// Number of sample frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.interleaved.len() / self.channels.max(1)
    }
}

fn sym_err(path: &Path, what: &str, e: SymError) -> Error {
    let msg = match e {
        SymError::Unsupported(m) => format!("{what}: unsupported format or codec ({m})"),
        SymError::DecodeError(m) => format!("{what}: corrupt or malformed audio ({m})"),
        SymError::IoError(io) => format!("{what}: {io} (truncated or unreadable audio?)"),
        SymError::LimitError(m) => format!("{what}: decoder limit reached ({m})"),
        SymError::SeekError(_) | SymError::ResetRequired => format!("{what}: {e}"),
    };
    Error::audio(path, msg)
}

/// What decoding does when a stream runs past [`MAX_AUDIO_SECONDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtLimit {
    /// An error naming the file and the limit (the default: nothing is silently dropped).
    Refuse,
    /// Stop reading there and keep what was decoded (for callers that use only a prefix, e.g. the 15 s speaker
    /// prompt or a cut to fewer seconds).
    Stop,
}

/// Decode every sample of the first audio track of `path`; longer than [`MAX_AUDIO_SECONDS`] is an error.
pub fn decode_file(path: &Path) -> Result<Decoded> {
    decode_file_with(path, AtLimit::Refuse)
}

/// [`decode_file`], with `at_limit` saying what happens past [`MAX_AUDIO_SECONDS`].
pub fn decode_file_with(path: &Path, at_limit: AtLimit) -> Result<Decoded> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::audio(path, "not a regular file"));
    }
    if meta.len() == 0 {
        return Err(Error::audio(path, "empty file (0 bytes)"));
    }
    let open =
        || -> Result<Box<dyn MediaSource>> { Ok(Box::new(std::fs::File::open(path).map_err(|e| Error::io(path, e))?)) };
    decode_source(&open, meta.len(), path, at_limit)
}

/// [`decode_file`] on the bytes of a file held in memory. `source` names the input in errors, and its
/// extension (if any) is the format hint, as a file name's would be.
pub fn decode_bytes(bytes: Vec<u8>, source: &Path) -> Result<Decoded> {
    decode_bytes_with(bytes, source, AtLimit::Refuse)
}

/// [`decode_bytes`], with `at_limit` saying what happens past [`MAX_AUDIO_SECONDS`].
pub fn decode_bytes_with(bytes: Vec<u8>, source: &Path, at_limit: AtLimit) -> Result<Decoded> {
    if bytes.is_empty() {
        return Err(Error::audio(source, "empty file (0 bytes)"));
    }
    let len = bytes.len() as u64;
    let bytes: std::sync::Arc<[u8]> = bytes.into();
    let open = || -> Result<Box<dyn MediaSource>> { Ok(Box::new(std::io::Cursor::new(ArcBytes(bytes.clone())))) };
    decode_source(&open, len, source, at_limit)
}

/// Shared bytes as a seekable source (a no-tag MP3 is probed twice).
struct ArcBytes(std::sync::Arc<[u8]>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Probe a fresh source from `open` and pick its first audio track: (reader, track id, codec parameters).
fn probe(
    open: &dyn Fn() -> Result<Box<dyn MediaSource>>,
    path: &Path,
    gapless: bool,
) -> Result<(Box<dyn FormatReader>, u32, CodecParameters)> {
    let source = open()?;
    contained(DECODER, path, "cannot open as audio", || {
        probe_source(source, path, gapless)
    })
}

/// [`probe`] on one opened source.
fn probe_source(
    source: Box<dyn MediaSource>,
    path: &Path,
    gapless: bool,
) -> Result<(Box<dyn FormatReader>, u32, CodecParameters)> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let fmt_opts = FormatOptions {
        enable_gapless: gapless,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &fmt_opts, &MetadataOptions::default())
        .map_err(|e| sym_err(path, "cannot open as audio", e))?;
    let format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| Error::audio(path, "no audio track"))?;
    let (id, params) = (track.id, track.codec_params.clone());
    Ok((format, id, params))
}

/// Decode the first audio track of the source `open` gives (`byte_len` bytes long; `path` names it and hints the
/// format).
fn decode_source(
    open: &dyn Fn() -> Result<Box<dyn MediaSource>>,
    byte_len: u64,
    path: &Path,
    at_limit: AtLimit,
) -> Result<Decoded> {
    header::check(&mut open()?, path)?;
    // Gapless: trim MP3/Vorbis encoder delay and padding where the stream says how much.
    let (mut format, mut track_id, mut params) = probe(open, path, true)?;
    if params.codec == CODEC_TYPE_MP3 && params.delay.is_none() && params.padding.is_none() {
        // An MP3 without a LAME/Xing tag carries no gapless information, yet symphonia's gapless mode would cut
        // the stream at its duration estimate (bytes / bitrate), dropping real frames. libsndfile (mpg123) keeps
        // every frame of such a file: so do we.
        (format, track_id, params) = probe(open, path, false)?;
    }
    contained(DECODER, path, "cannot decode", || {
        decode_track(format, track_id, &params, byte_len, path, at_limit)
    })
}

/// Decode every packet of track `track_id` (codec `params`) that `format` reads.
fn decode_track(
    mut format: Box<dyn FormatReader>,
    track_id: u32,
    params: &CodecParameters,
    byte_len: u64,
    path: &Path,
    at_limit: AtLimit,
) -> Result<Decoded> {
    let mut decoder = symphonia::default::get_codecs()
        .make(params, &DecoderOptions::default())
        .map_err(|e| sym_err(path, "cannot decode", e))?;

    let mut sample_rate = params.sample_rate;
    let mut channels = params.channels.map(|c| c.count());
    let mut interleaved: Vec<f32> = Vec::new();
    if let Some(n) = params.n_frames {
        // A hint only: a header claiming hours in a small file must not make us allocate for hours up front.
        // Uncompressed PCM holds at most one sample per byte; compressed streams simply grow past this.
        let ch = channels.unwrap_or(1) as u64;
        interleaved.reserve(n.saturating_mul(ch).min(byte_len) as usize);
    }
    let mut buf: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            // End of stream: symphonia reports it as an UnexpectedEof I/O error.
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(sym_err(path, "cannot read audio packet", e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = decoder
            .decode(&packet)
            .map_err(|e| sym_err(path, "cannot decode audio packet", e))?;
        let spec = *decoded.spec();
        let ch = spec.channels.count();
        if ch == 0 {
            return Err(Error::audio(path, "stream has 0 channels"));
        }
        match channels {
            Some(c) if c != ch => {
                return Err(Error::audio(
                    path,
                    format!("channel count changes mid-stream ({c} -> {ch})"),
                ))
            }
            _ => channels = Some(ch),
        }
        match sample_rate {
            Some(r) if r != spec.rate => {
                return Err(Error::audio(
                    path,
                    format!("sample rate changes mid-stream ({r} -> {})", spec.rate),
                ))
            }
            _ => sample_rate = Some(spec.rate),
        }
        let frames = decoded.frames();
        if frames == 0 {
            continue;
        }
        let need = decoded.capacity() as u64;
        let sb = match &mut buf {
            Some(b) if b.capacity() as u64 >= need * ch as u64 => b,
            _ => buf.insert(SampleBuffer::<f32>::new(need, spec)),
        };
        sb.copy_interleaved_ref(decoded);
        interleaved.extend_from_slice(sb.samples());
        // Known as soon as it happens, so an overlong stream is never decoded whole.
        let limit = u64::from(MAX_AUDIO_SECONDS) * u64::from(spec.rate);
        if (interleaved.len() / ch) as u64 > limit {
            if at_limit == AtLimit::Stop {
                interleaved.truncate(limit as usize * ch);
                break;
            }
            return Err(Error::audio(
                path,
                format!(
                    "audio is longer than the {MAX_AUDIO_SECONDS} s limit ({} Hz, more than {limit} frames); \
                     split or cut it first (memory grows with length: see README, \"Resource use\")",
                    spec.rate
                ),
            ));
        }
    }
    let channels = channels.ok_or_else(|| Error::audio(path, "unknown channel count"))?;
    let sample_rate = sample_rate.ok_or_else(|| Error::audio(path, "unknown sample rate"))?;
    if sample_rate == 0 {
        return Err(Error::audio(path, "sample rate is 0"));
    }
    if interleaved.is_empty() {
        return Err(Error::audio(path, "no audio samples"));
    }
    Ok(Decoded {
        interleaved,
        channels,
        sample_rate,
    })
}

/// Average the channels of interleaved `[frames, channels]` samples into `[frames]` mono samples.
///
/// Summed in f32 in channel order then divided by the count, as `np.mean(y, axis=0)` does in librosa.
pub fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    let n = channels as f32;
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().fold(0.0f32, |acc, &s| acc + s) / n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backstop on its own: symphonia's probe of a WAV declaring 0 Hz, without the header check in front
    /// (which refuses it first in `decode_source`), panics inside symphonia; `probe` returns that as this file's
    /// error.
    #[test]
    fn a_symphonia_panic_is_this_files_error() {
        let pinned = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/audio/wav_fmt_sample_rate_0hz_timebase_panic"
        );
        let bytes: std::sync::Arc<[u8]> = std::fs::read(pinned).unwrap()[1..].into();
        let open = || -> Result<Box<dyn MediaSource>> { Ok(Box::new(std::io::Cursor::new(ArcBytes(bytes.clone())))) };
        let e = probe(&open, Path::new("in/zero.wav"), true).err().unwrap();
        let s = e.to_string();
        assert!(matches!(e, Error::Audio { .. }), "{e:?}");
        for want in [
            "in/zero.wav",
            "cannot open as audio",
            "symphonia",
            "panicked",
            "TimeBase cannot have 0",
            "units.rs",
        ] {
            assert!(s.contains(want), "{want:?} missing from {s}");
        }
    }

    #[test]
    fn downmix_averages() {
        assert_eq!(downmix(&[1.0, 3.0, -2.0, 4.0], 2), vec![2.0, 1.0]);
        assert_eq!(downmix(&[0.5, -0.5], 1), vec![0.5, -0.5]);
        assert_eq!(downmix(&[], 2), Vec::<f32>::new());
        assert_eq!(downmix(&[3.0, 6.0, 9.0], 3), vec![6.0]);
    }
}
