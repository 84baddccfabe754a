//! Header fields checked before symphonia sees them.
//!
//! symphonia 0.5.5 trusts some header fields into assertions and divisions: a WAV `fmt ` chunk declaring 0 Hz
//! panics in `TimeBase::new` while probing, a block alignment of 0 divides by zero, and the ADPCM block
//! arithmetic underflows on small alignments. Such files are refused here with the field named;
//! [`super::contain`] stays the backstop for what this does not know of. FLAC, MP3 and Ogg/Vorbis headers are
//! validated by symphonia itself (sample rate 0 is an error there, not a panic).

use crate::error::{Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Chunks walked before giving up looking for `data` (symphonia reports a file without one).
const MAX_CHUNKS: usize = 4096;

/// Refuse a RIFF/WAVE source whose `fmt ` chunk has a field symphonia would not survive. Sources of any other
/// format, or too short to tell, pass (symphonia reports those).
pub fn check(src: &mut (impl Read + Seek), path: &Path) -> Result<()> {
    let mut riff = [0u8; 12];
    if !read_full(src, &mut riff, path)? || &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Ok(());
    }
    let mut at: u64 = 12;
    for _ in 0..MAX_CHUNKS {
        let mut head = [0u8; 8];
        src.seek(SeekFrom::Start(at)).map_err(|e| Error::io(path, e))?;
        if !read_full(src, &mut head, path)? {
            return Ok(());
        }
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        match &head[0..4] {
            b"data" => return Ok(()),
            b"fmt " => {
                let mut fmt = [0u8; 16];
                if len >= 16 && read_full(src, &mut fmt, path)? {
                    check_fmt(&fmt, path)?;
                }
            }
            _ => {}
        }
        at += 8 + u64::from(len) + u64::from(len & 1);
    }
    Ok(())
}

/// The 16 bytes every `fmt ` chunk starts with: tag, channels, rate, bytes/s, block alignment, bits.
fn check_fmt(fmt: &[u8; 16], path: &Path) -> Result<()> {
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let (tag, channels, block_align) = (u16_at(0), u16_at(2), u16_at(12));
    let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    let refuse = |what: String| {
        Err(Error::audio(
            path,
            format!("WAV `fmt ` chunk: {what}; the file is refused"),
        ))
    };
    match tag {
        0x0002 | 0x0011 => refuse(format!(
            "format tag {tag:#06x} ({} ADPCM) is not supported (PCM, IEEE float, A-law, mu-law and \
             WAVE_FORMAT_EXTENSIBLE are)",
            if tag == 2 { "Microsoft" } else { "IMA" }
        )),
        _ if rate == 0 => refuse("sample rate is 0 Hz".into()),
        _ if channels == 0 => refuse("channel count is 0".into()),
        _ if block_align == 0 => refuse("block alignment is 0 bytes".into()),
        _ => Ok(()),
    }
}

/// Fill `buf`; `false` if the source ends first.
fn read_full(src: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<bool> {
    match src.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A 16-bit PCM WAV: `pre` chunks, then `fmt ` with these fields, then 4 frames of data.
    fn wav(pre: &[(&[u8; 4], Vec<u8>)], tag: u16, channels: u16, rate: u32, block_align: u16) -> Vec<u8> {
        let mut body = b"WAVE".to_vec();
        let mut chunk = |id: &[u8; 4], data: &[u8]| {
            body.extend_from_slice(id);
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        };
        for (id, data) in pre {
            chunk(id, data);
        }
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&tag.to_le_bytes());
        fmt.extend_from_slice(&channels.to_le_bytes());
        fmt.extend_from_slice(&rate.to_le_bytes());
        fmt.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
        fmt.extend_from_slice(&block_align.to_le_bytes());
        fmt.extend_from_slice(&16u16.to_le_bytes());
        chunk(b"fmt ", &fmt);
        chunk(b"data", &[0u8; 8]);
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn check_bytes(b: Vec<u8>) -> Result<()> {
        check(&mut Cursor::new(b), Path::new("in/x.wav"))
    }

    #[test]
    fn refuses_fields_symphonia_would_not_survive_and_names_them() {
        for (bytes, want) in [
            (wav(&[], 1, 1, 0, 2), "sample rate is 0 Hz"),
            (wav(&[], 1, 0, 16000, 2), "channel count is 0"),
            (wav(&[], 1, 1, 16000, 0), "block alignment is 0"),
            (wav(&[], 2, 1, 16000, 256), "ADPCM"),
            (wav(&[], 0x11, 1, 16000, 256), "ADPCM"),
            // Behind an odd-length chunk (padded) and a LIST chunk.
            (
                wav(&[(b"junk", vec![1; 3]), (b"LIST", vec![0; 26])], 1, 2, 0, 4),
                "sample rate is 0 Hz",
            ),
        ] {
            let e = check_bytes(bytes).unwrap_err().to_string();
            assert!(
                e.contains("in/x.wav") && e.contains("`fmt `") && e.contains(want),
                "{want}: {e}"
            );
        }
    }

    #[test]
    fn passes_valid_wavs_other_formats_and_short_sources() {
        check_bytes(wav(&[], 1, 1, 16000, 2)).unwrap();
        check_bytes(wav(&[(b"junk", vec![1; 3])], 3, 2, 44100, 8)).unwrap();
        for other in [
            b"fLaC\0\0\0\x22".to_vec(),
            b"ID3".to_vec(),
            b"OggS".to_vec(),
            vec![],
            b"RIFF\0\0".to_vec(),
        ] {
            check_bytes(other).unwrap();
        }
        // A bad `fmt ` after `data` is never read by symphonia either.
        let mut b = wav(&[], 1, 1, 16000, 2);
        b.extend_from_slice(b"fmt \x10\0\0\0\x01\0\x01\0\0\0\0\0\0\0\0\0\x02\0\x10\0");
        check_bytes(b).unwrap();
    }
}
