//! A streaming gzip decoder (one or more members), for bodies that arrive in chunks: each push
//! returns what the chunk decompressed to, so nothing but the inflate window is held.

use std::io::{self, Write};

use flate2::write::MultiGzDecoder;

/// One body's gzip decoder.
pub struct Decoder {
    inner: MultiGzDecoder<Vec<u8>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder at the start of a gzip stream.
    pub fn new() -> Decoder {
        Decoder {
            inner: MultiGzDecoder::new(Vec::new()),
        }
    }

    /// Decompresses the next piece of the stream; returns the bytes it produced. An error means
    /// the stream is not valid gzip.
    pub fn push(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        self.inner.write_all(input)?;
        Ok(std::mem::take(self.inner.get_mut()))
    }

    /// Ends the stream; the error says it was cut short or its checksum is wrong.
    pub fn finish(&mut self) -> io::Result<Vec<u8>> {
        self.inner.try_finish()?;
        Ok(std::mem::take(self.inner.get_mut()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gzip::Encoder;

    #[test]
    fn decodes_what_the_encoder_made_in_any_pieces() {
        let input: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut enc = Encoder::new(1, 100);
        let mut gz = enc.push(&input).to_vec();
        gz.extend_from_slice(&enc.finish());
        let mut dec = Decoder::new();
        let mut out = Vec::new();
        for piece in gz.chunks(333) {
            out.extend(dec.push(piece).expect("valid"));
        }
        out.extend(dec.finish().expect("complete"));
        assert_eq!(out, input);
        // Cut short: the end says so.
        let mut dec = Decoder::new();
        let _ = dec.push(&gz[..gz.len() - 4]).expect("valid so far");
        assert!(dec.finish().is_err());
        assert!(Decoder::new().push(b"not gzip at all").is_err());
    }
}
