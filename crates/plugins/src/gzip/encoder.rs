//! A streaming gzip encoder (RFC 1952) over flate2's raw deflate, handing its output on in
//! pieces of a fixed size like nginx's `gzip_buffers`.
//!
//! Memory stays bounded whatever the body's length: the deflate state (its 32 KiB window) plus
//! less than one piece of compressed output waiting to fill up.

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

/// The member header nginx writes: no name, no mtime, no extra flags, OS unix.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// Output room asked for before each deflate call.
const ROOM: usize = 8 * 1024;

/// One response's gzip stream.
pub struct Encoder {
    deflate: Compress,
    crc: crc32fast::Hasher,
    /// Input length modulo 2^32 (the trailer's ISIZE).
    len: u32,
    /// Output is handed on in whole pieces of this many bytes until the end.
    piece: usize,
    /// Compressed output not handed on yet (starts with the header).
    out: Vec<u8>,
    finished: bool,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("len", &self.len)
            .field("held", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// An encoder at `level` (1–9) handing output on in pieces of `piece` bytes.
    pub fn new(level: u32, piece: usize) -> Encoder {
        let mut out = Vec::with_capacity(ROOM);
        out.extend_from_slice(&HEADER);
        Encoder {
            deflate: Compress::new(Compression::new(level.clamp(1, 9)), false),
            crc: crc32fast::Hasher::new(),
            len: 0,
            piece: piece.max(1),
            out,
            finished: false,
        }
    }

    /// Compresses `input`; returns the whole pieces of output ready (often none).
    pub fn push(&mut self, input: &[u8]) -> Bytes {
        if self.finished || input.is_empty() {
            return Bytes::new();
        }
        self.crc.update(input);
        self.len = self.len.wrapping_add(input.len() as u32);
        self.deflate(input, FlushCompress::None);
        let whole = self.out.len() / self.piece * self.piece;
        if whole == 0 {
            return Bytes::new();
        }
        let rest = self.out.split_off(whole);
        Bytes::from(std::mem::replace(&mut self.out, rest))
    }

    /// Ends the stream: everything still held, the end of the deflate stream and the trailer.
    pub fn finish(&mut self) -> Bytes {
        if self.finished {
            return Bytes::new();
        }
        self.finished = true;
        self.deflate(&[], FlushCompress::Finish);
        let crc = std::mem::take(&mut self.crc).finalize();
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out.extend_from_slice(&self.len.to_le_bytes());
        Bytes::from(std::mem::take(&mut self.out))
    }

    /// Pushes `input` through deflate until it is consumed (and, when finishing, until the
    /// stream ended); output is appended to `out`.
    fn deflate(&mut self, mut input: &[u8], flush: FlushCompress) {
        loop {
            if self.out.capacity() - self.out.len() < ROOM {
                self.out.reserve(ROOM);
            }
            let before = self.deflate.total_in();
            let status = self.deflate.compress_vec(input, &mut self.out, flush);
            let used = usize::try_from(self.deflate.total_in() - before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            let room_left = self.out.len() < self.out.capacity();
            match status {
                // Raw deflate into a growing buffer cannot fail; stop rather than spin.
                Err(e) => {
                    tracing::error!("gzip: deflate failed: {e}");
                    return;
                }
                Ok(Status::StreamEnd) => return,
                Ok(_) if matches!(flush, FlushCompress::Finish) => {}
                Ok(_) if input.is_empty() && room_left => return,
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn round_trips_in_pieces() {
        let input: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut enc = Encoder::new(1, 4096);
        let mut gz = Vec::new();
        for chunk in input.chunks(7000) {
            let out = enc.push(chunk);
            assert_eq!(out.len() % 4096, 0, "only whole pieces before the end");
            gz.extend_from_slice(&out);
        }
        gz.extend_from_slice(&enc.finish());
        assert_eq!(&gz[..10], &HEADER);
        assert_eq!(gunzip(&gz), input);
        assert!(enc.finish().is_empty() && enc.push(b"late").is_empty());
    }

    #[test]
    fn empty_and_tiny_bodies() {
        let mut enc = Encoder::new(9, 4096);
        assert_eq!(gunzip(&enc.finish()), b"");
        let mut enc = Encoder::new(5, 1);
        let mut gz = enc.push(b"hello").to_vec();
        gz.extend_from_slice(&enc.finish());
        assert_eq!(gunzip(&gz), b"hello");
    }
}
