//! Streaming adapters over `std::io`: one thread, one record of buffer.

use std::fmt;
use std::io::{self, Read, Write};

use crate::format::{Key, Opener, Sealer, CHUNK_LEN, HEADER_LEN, RECORD_LEN};
use crate::Error;

/// Encrypts everything written to it into `W` (a `std::io::Write`).
///
/// The header is written by [`Encryptor::new`]. A full chunk is sealed only
/// when more input arrives (so the last one is known); [`Encryptor::finish`]
/// seals the last chunk and must be called: an encryptor dropped without it
/// leaves a stream that fails to open (truncated).
pub struct Encryptor<W: Write> {
    inner: Option<W>,
    sealer: Sealer,
    /// One record: plaintext `[..filled]`, room for the tag after it.
    buf: Vec<u8>,
    filled: usize,
}

// Debug shows no buffered bytes (they are plaintext).
impl<W: Write> fmt::Debug for Encryptor<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("sealer", &self.sealer)
            .field("buffered", &self.filled)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Encryptor<W> {
    /// Starts a stream under `key` (fresh random salt) and writes its header.
    pub fn new(key: &Key, mut inner: W) -> Result<Self, Error> {
        let sealer = Sealer::new(key)?;
        inner.write_all(sealer.header()).map_err(Error::Write)?;
        Ok(Encryptor {
            inner: Some(inner),
            sealer,
            buf: vec![0u8; RECORD_LEN],
            filled: 0,
        })
    }

    fn seal_buffered(&mut self, last: bool) -> io::Result<()> {
        let len = self
            .sealer
            .seal_chunk(&mut self.buf, self.filled, last)
            .map_err(io::Error::other)?;
        self.filled = 0;
        match self.inner.as_mut() {
            Some(w) => w.write_all(&self.buf[..len]),
            None => Err(io::Error::other(Error::Misuse("write after finish"))),
        }
    }

    /// Seals the last chunk, flushes, and returns the inner writer.
    pub fn finish(mut self) -> Result<W, Error> {
        self.seal_buffered(true).map_err(into_error)?;
        let mut w = self
            .inner
            .take()
            .ok_or(Error::Misuse("finish after finish"))?;
        w.flush().map_err(Error::Write)?;
        Ok(w)
    }
}

/// An `io::Error` from this crate back into its [`Error`].
fn into_error(e: io::Error) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Error>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(err) = inner.downcast::<Error>() {
                return *err;
            }
        }
        return Error::Misuse("an error lost in conversion");
    }
    Error::Write(e)
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if self.filled == CHUNK_LEN {
            // More input: the buffered full chunk is not the last.
            self.seal_buffered(false)?;
        }
        let n = data.len().min(CHUNK_LEN - self.filled);
        self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // A partial chunk cannot be written before it is complete.
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

/// Decrypts a stream read from `R` (a `std::io::Read`).
///
/// [`Decryptor::new`] reads and authenticates the header (a wrong key is
/// reported there). `read` returns only authenticated plaintext; an
/// integrity failure is an `io::Error` of kind `InvalidData` whose inner
/// error is this crate's [`Error`] (see [`Decryptor::error_of`]).
pub struct Decryptor<R: Read> {
    inner: R,
    opener: Opener,
    /// Ciphertext read ahead: one record and one byte (to know whether the
    /// record is the last).
    buf: Vec<u8>,
    filled: usize,
    /// Plaintext of the current record: `buf[pos..end]`.
    pos: usize,
    end: usize,
    /// The length of the record whose plaintext is being served.
    served: usize,
    eof: bool,
    /// A record failed: nothing more is returned.
    failed: bool,
}

impl<R: Read> fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("opener", &self.opener)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Decryptor<R> {
    /// Reads the header from `inner` and checks it under `key`.
    pub fn new(key: &Key, mut inner: R) -> Result<Self, Error> {
        let mut header = [0u8; HEADER_LEN];
        let n = read_full(&mut inner, &mut header).map_err(Error::Read)?;
        let opener = Opener::new(key, &header[..n])?;
        Ok(Decryptor {
            inner,
            opener,
            buf: vec![0u8; RECORD_LEN + 1],
            filled: 0,
            pos: 0,
            end: 0,
            served: 0,
            eof: false,
            failed: false,
        })
    }

    /// The [`Error`] inside an `io::Error` returned by `read`, if any.
    pub fn error_of(e: &io::Error) -> Option<&Error> {
        e.get_ref().and_then(|i| i.downcast_ref::<Error>())
    }

    /// Opens the next record into `buf[..]`; false at the end.
    fn next_record(&mut self) -> Result<bool, Error> {
        if self.failed {
            return Err(Error::Misuse("a read after an integrity failure"));
        }
        if self.opener.is_finished() {
            return Ok(false);
        }
        // Drop the record served, keep the byte read ahead.
        if self.served > 0 {
            self.buf.copy_within(self.served..self.filled, 0);
            self.filled -= self.served;
            self.served = 0;
        }
        while !self.eof && self.filled < self.buf.len() {
            match self.inner.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Read(e)),
            }
        }
        let (len, last) = if self.filled > RECORD_LEN {
            (RECORD_LEN, false)
        } else {
            (self.filled, true)
        };
        if last && len == 0 && self.opener.chunks() == 0 {
            return Err(Error::NoChunks);
        }
        let plain = match self.opener.open_chunk(&mut self.buf[..len], last) {
            Ok(p) => p.len(),
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        self.pos = 0;
        self.end = plain;
        self.served = len;
        Ok(true)
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.end {
            if !self.next_record().map_err(|e| match e {
                Error::Read(e) => e,
                e => io::Error::new(io::ErrorKind::InvalidData, e),
            })? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.end - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads until `buf` is full or the end; returns the bytes read.
pub(crate) fn read_full(src: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
