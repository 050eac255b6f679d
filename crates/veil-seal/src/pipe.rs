//! The two-thread pipeline behind `veil encrypt` and `veil decrypt`.
//!
//! The calling thread reads a batch of records and seals (or opens) them in
//! place; a second thread writes the previous batch meanwhile. Buffers go
//! round between the two (no allocation per chunk or per batch once the
//! pipeline is full). Plaintext is read straight into the record slots of
//! a batch with `readv`, and written straight out of them with `writev`,
//! so no byte is copied in user space.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use crate::format::{Key, Opener, Sealer, CHUNK_LEN, HEADER_LEN, RECORD_LEN};
use crate::stream::read_full;
use crate::Error;

/// Records per batch (1 MiB of plaintext).
const BATCH: usize = 16;
/// Batches in flight between the two threads (besides the one being
/// filled and the one being written).
const QUEUE: usize = 2;

/// A batch for the writer: the buffer, and what of it to write.
struct Batch {
    buf: Vec<u8>,
    /// Encrypt: bytes `buf[..len]`. Decrypt: the number of records, whose
    /// plaintext sits at the start of each record slot.
    count: usize,
    /// Decrypt: plaintext bytes of the batch's last record.
    tail: usize,
    /// Where the batch goes in the output (for writers to a file).
    at: u64,
}

/// Reads `input` to its end and writes it sealed under `key` (a fresh
/// salt) to `output`. `progress` is told the input bytes consumed so far,
/// after every batch. Returns the plaintext length.
///
/// On an error, `output` has received a prefix of the sealed stream, which
/// fails to open (it is truncated); callers discard it.
pub fn encrypt(
    key: &Key,
    input: &mut dyn Read,
    output: &mut (dyn Write + Send),
    progress: &mut dyn FnMut(u64),
) -> Result<u64, Error> {
    let mut sealer = Sealer::new(key)?;
    let header = *sealer.header();
    pipeline(
        output,
        move |out| out.write_all(&header),
        |out, b| out.write_all(&b.buf[..b.count]),
        |to_writer, recycled| {
            seal_batches(&mut sealer, input, to_writer, recycled, progress, &|| false)
        },
    )
}

/// Threads writing to a file in [`encrypt_to_file`] and [`decrypt_to_file`].
const FILE_WRITERS: usize = 2;

/// [`encrypt`] into a regular file, which must be empty: batches are
/// written with `pwrite` at their offsets by two threads, so that what
/// writing costs the kernel (above all, allocating the file's pages) runs
/// on two cores beside the reading and sealing.
pub fn encrypt_to_file(
    key: &Key,
    input: &mut dyn Read,
    output: &std::fs::File,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, Error> {
    let mut sealer = Sealer::new(key)?;
    output
        .write_all_at(sealer.header(), 0)
        .map_err(Error::Write)?;
    to_file(
        output,
        |out, b| out.write_all_at(&b.buf[..b.count], b.at),
        |to_writer, recycled, stop| {
            seal_batches(&mut sealer, input, to_writer, recycled, progress, stop)
        },
    )
}

/// [`decrypt`] into a regular file, which must be empty, as
/// [`encrypt_to_file`] does: only authenticated chunks are written, each at
/// its offset.
pub fn decrypt_to_file(
    key: &Key,
    input: &mut dyn Read,
    output: &std::fs::File,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, Error> {
    let mut header = [0u8; HEADER_LEN];
    let n = read_full(input, &mut header).map_err(Error::Read)?;
    let mut opener = Opener::new(key, &header[..n])?;
    to_file(
        output,
        |out, b| {
            let mut at = b.at;
            for (i, slot) in b.buf.chunks(RECORD_LEN).take(b.count).enumerate() {
                let len = if i + 1 == b.count { b.tail } else { CHUNK_LEN };
                out.write_all_at(&slot[..len], at)?;
                at += len as u64;
            }
            Ok(())
        },
        |to_writer, recycled, stop| {
            open_batches(&mut opener, input, to_writer, recycled, progress, stop)
        },
    )
}

/// Runs `produce` on this thread and FILE_WRITERS threads taking its
/// batches and writing each with `write` (at the batch's offset).
fn to_file(
    output: &std::fs::File,
    write: impl Fn(&std::fs::File, &Batch) -> io::Result<()> + Sync,
    produce: impl FnOnce(
        &mpsc::SyncSender<Batch>,
        &mpsc::Receiver<Vec<u8>>,
        &dyn Fn() -> bool,
    ) -> Result<u64, Error>,
) -> Result<u64, Error> {
    let (to_writer, from_producer) = mpsc::sync_channel::<Batch>(QUEUE);
    let from_producer = Mutex::new(from_producer);
    let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..FILE_WRITERS)
            .map(|_| {
                let recycle = recycle.clone();
                let (from_producer, failed, write) = (&from_producer, &failed, &write);
                scope.spawn(move || -> Result<(), Error> {
                    loop {
                        let next = match from_producer.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return Err(Error::Misuse("a writer thread panicked")),
                        };
                        let Ok(b) = next else {
                            return Ok(());
                        };
                        if let Err(e) = write(output, &b) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(Error::Write(e));
                        }
                        let _ = recycle.send(b.buf);
                    }
                })
            })
            .collect();
        drop(recycle);
        let stop = || failed.load(Ordering::Relaxed);
        let produced = produce(&to_writer, &recycled, &stop);
        drop(to_writer);
        let mut written = Ok(());
        for w in writers {
            let r = w
                .join()
                .unwrap_or(Err(Error::Misuse("a writer thread panicked")));
            if written.is_ok() {
                written = r;
            }
        }
        settle(produced, written)
    })
}

/// Reads a sealed stream from `input`, authenticates its header under
/// `key` (a wrong key is [`Error::WrongKey`], before anything is written),
/// and writes its plaintext to `output`, only ever chunks whose tag
/// verified. `progress` is told the input bytes consumed so far. Returns
/// the plaintext length.
///
/// On an integrity error, `output` may have received the plaintext of the
/// chunks before the failing one (all authentic); callers that must not
/// keep a partial result discard it.
pub fn decrypt(
    key: &Key,
    input: &mut dyn Read,
    output: &mut (dyn Write + Send),
    progress: &mut dyn FnMut(u64),
) -> Result<u64, Error> {
    let mut header = [0u8; HEADER_LEN];
    let n = read_full(input, &mut header).map_err(Error::Read)?;
    let mut opener = Opener::new(key, &header[..n])?;
    pipeline(
        output,
        |_| Ok(()),
        |out, b| {
            let mut slices: Vec<IoSlice<'_>> = b
                .buf
                .chunks(RECORD_LEN)
                .take(b.count)
                .enumerate()
                .map(|(i, slot)| {
                    let len = if i + 1 == b.count { b.tail } else { CHUNK_LEN };
                    IoSlice::new(&slot[..len])
                })
                .collect();
            write_all_vectored(out, &mut slices)
        },
        |to_writer, recycled| {
            open_batches(&mut opener, input, to_writer, recycled, progress, &|| false)
        },
    )
}

/// Runs `produce` on this thread and a writer on a second one.
fn pipeline(
    output: &mut (dyn Write + Send),
    start: impl FnOnce(&mut (dyn Write + Send)) -> io::Result<()> + Send,
    write: impl Fn(&mut (dyn Write + Send), &Batch) -> io::Result<()> + Send,
    produce: impl FnOnce(&mpsc::SyncSender<Batch>, &mpsc::Receiver<Vec<u8>>) -> Result<u64, Error>,
) -> Result<u64, Error> {
    let (to_writer, from_producer) = mpsc::sync_channel::<Batch>(QUEUE);
    let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<(), Error> {
            start(output).map_err(Error::Write)?;
            for b in from_producer {
                write(output, &b).map_err(Error::Write)?;
                let _ = recycle.send(b.buf);
            }
            output.flush().map_err(Error::Write)
        });
        let produced = produce(&to_writer, &recycled);
        drop(to_writer);
        let written = writer
            .join()
            .unwrap_or(Err(Error::Misuse("the writer thread panicked")));
        settle(produced, written)
    })
}

/// The outcome of a producer and its writer(s).
fn settle(produced: Result<u64, Error>, written: Result<(), Error>) -> Result<u64, Error> {
    match (produced, written) {
        (Ok(n), Ok(())) => Ok(n),
        // What went wrong with the input comes first...
        (Err(e), _) if e.is_integrity() || matches!(e, Error::Read(_)) => Err(e),
        // ...then the writer's error (which stops the producer).
        (_, Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
    }
}

/// The producer's "the writer is gone" (its error is reported instead).
fn writer_gone() -> Error {
    Error::Misuse("the writer thread stopped")
}

fn buffer(recycled: &mpsc::Receiver<Vec<u8>>, cap: usize) -> Vec<u8> {
    recycled.try_recv().unwrap_or_else(|_| vec![0u8; cap])
}

/// Reads stream bytes `from..to` of a batch into the plaintext areas of its
/// record slots (stream byte `k` goes to slot `k / CHUNK_LEN`).
fn read_slots(
    input: &mut dyn Read,
    buf: &mut [u8],
    from: usize,
    to: usize,
) -> Result<usize, Error> {
    let mut slices: Vec<IoSliceMut<'_>> = buf
        .chunks_mut(RECORD_LEN)
        .enumerate()
        .filter_map(|(i, slot)| {
            let (s0, s1) = (i * CHUNK_LEN, (i + 1) * CHUNK_LEN);
            if s1 <= from || s0 >= to {
                return None;
            }
            let (a, b) = (from.max(s0) - s0, to.min(s1) - s0);
            slot.get_mut(a..b).map(IoSliceMut::new)
        })
        .collect();
    loop {
        match input.read_vectored(&mut slices) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Read(e)),
        }
    }
}

fn seal_batches(
    sealer: &mut Sealer,
    input: &mut dyn Read,
    to_writer: &mpsc::SyncSender<Batch>,
    recycled: &mpsc::Receiver<Vec<u8>>,
    progress: &mut dyn FnMut(u64),
    stop: &dyn Fn() -> bool,
) -> Result<u64, Error> {
    let cap = (BATCH + 1) * RECORD_LEN;
    let mut at = HEADER_LEN as u64;
    // A batch is sealed once one byte past its BATCH chunks has been read:
    // those chunks are then certainly not the last.
    let target = BATCH * CHUNK_LEN + 1;
    let mut carry: Option<u8> = None;
    let mut total = 0u64;
    loop {
        let mut buf = buffer(recycled, cap);
        let mut filled = 0;
        if let Some(b) = carry.take() {
            buf[0] = b;
            filled = 1;
        }
        let mut eof = false;
        while filled < target {
            let n = read_slots(input, &mut buf, filled, target)?;
            if n == 0 {
                eof = true;
                break;
            }
            filled += n;
        }
        if eof {
            // The rest, the last chunk sealed as last (an empty input is
            // one empty chunk).
            let k = filled.div_ceil(CHUNK_LEN).max(1);
            let mut used = 0;
            for (i, slot) in buf.chunks_mut(RECORD_LEN).take(k).enumerate() {
                let last = i + 1 == k;
                let len = if last {
                    filled - i * CHUNK_LEN
                } else {
                    CHUNK_LEN
                };
                used = i * RECORD_LEN + sealer.seal_chunk(slot, len, last)?;
            }
            total += filled as u64;
            to_writer
                .send(Batch {
                    buf,
                    count: used,
                    tail: 0,
                    at,
                })
                .map_err(|_| writer_gone())?;
            progress(total);
            return Ok(total);
        }
        carry = Some(buf[BATCH * RECORD_LEN]);
        for slot in buf.chunks_mut(RECORD_LEN).take(BATCH) {
            sealer.seal_chunk(slot, CHUNK_LEN, false)?;
        }
        total += (BATCH * CHUNK_LEN) as u64;
        to_writer
            .send(Batch {
                buf,
                count: BATCH * RECORD_LEN,
                tail: 0,
                at,
            })
            .map_err(|_| writer_gone())?;
        at += (BATCH * RECORD_LEN) as u64;
        progress(total);
        if stop() {
            return Err(writer_gone());
        }
    }
}

fn open_batches(
    opener: &mut Opener,
    input: &mut dyn Read,
    to_writer: &mpsc::SyncSender<Batch>,
    recycled: &mpsc::Receiver<Vec<u8>>,
    progress: &mut dyn FnMut(u64),
    stop: &dyn Fn() -> bool,
) -> Result<u64, Error> {
    // BATCH records and one byte past them: then they are not the last.
    let cap = BATCH * RECORD_LEN + 1;
    let mut carry: Option<u8> = None;
    let mut consumed = HEADER_LEN as u64;
    let mut plain = 0u64;
    progress(consumed);
    loop {
        let mut buf = buffer(recycled, cap);
        let mut filled = 0;
        if let Some(b) = carry.take() {
            buf[0] = b;
            filled = 1;
        }
        let mut eof = false;
        while filled < cap {
            match input.read(&mut buf[filled..cap]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Read(e)),
            }
        }
        if !eof {
            carry = Some(buf[cap - 1]);
            for slot in buf.chunks_mut(RECORD_LEN).take(BATCH) {
                opener.open_chunk(slot, false)?;
            }
            consumed += (BATCH * RECORD_LEN) as u64;
            to_writer
                .send(Batch {
                    buf,
                    count: BATCH,
                    tail: CHUNK_LEN,
                    at: plain,
                })
                .map_err(|_| writer_gone())?;
            plain += (BATCH * CHUNK_LEN) as u64;
            progress(consumed);
            if stop() {
                return Err(writer_gone());
            }
            continue;
        }
        if filled == 0 {
            // Only possible before any record: a carried byte starts every
            // later batch.
            return Err(Error::NoChunks);
        }
        let records = filled.div_ceil(RECORD_LEN);
        let at = plain;
        let mut tail = 0;
        for (i, slot) in buf[..filled].chunks_mut(RECORD_LEN).enumerate() {
            let last = i + 1 == records;
            let p = opener.open_chunk(slot, last)?.len();
            plain += p as u64;
            tail = p;
        }
        consumed += filled as u64;
        to_writer
            .send(Batch {
                buf,
                count: records,
                tail,
                at,
            })
            .map_err(|_| writer_gone())?;
        progress(consumed);
        return Ok(plain);
    }
}

/// `write_all` over several buffers (`Write::write_all_vectored` is not
/// stable).
fn write_all_vectored(
    out: &mut (dyn Write + Send),
    mut bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match out.write_vectored(bufs) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write the whole buffer",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A reader that hands out at most `step` bytes per call (and ignores
    /// vectored reads beyond the first buffer, as the default does).
    struct Dribble<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(self.step).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn batches_round_trip_at_batch_boundaries() {
        let key = Key::generate().unwrap();
        let b = BATCH * CHUNK_LEN;
        for n in [
            0,
            1,
            CHUNK_LEN,
            b - 1,
            b,
            b + 1,
            2 * b,
            2 * b + CHUNK_LEN + 7,
        ] {
            let data = pattern(n);
            let mut sealed = Vec::new();
            let mut seen = 0;
            let len = encrypt(&key, &mut &data[..], &mut sealed, &mut |p| seen = p).unwrap();
            assert_eq!(len, n as u64);
            assert_eq!(seen, n as u64);
            let records = n.div_ceil(CHUNK_LEN).max(1);
            assert_eq!(sealed.len(), HEADER_LEN + n + records * 16, "n = {n}");
            let mut out = Vec::new();
            let mut seen = 0;
            let got = decrypt(&key, &mut &sealed[..], &mut out, &mut |p| seen = p).unwrap();
            assert_eq!(got, n as u64);
            assert_eq!(seen, sealed.len() as u64);
            assert!(out == data, "n = {n}");
            // Small reads on both sides.
            let mut sealed2 = Vec::new();
            let mut r = Dribble {
                data: &data,
                step: 4099,
            };
            encrypt(&key, &mut r, &mut sealed2, &mut |_| {}).unwrap();
            let mut out2 = Vec::new();
            let mut r = Dribble {
                data: &sealed2,
                step: 5003,
            };
            decrypt(&key, &mut r, &mut out2, &mut |_| {}).unwrap();
            assert!(out2 == data, "n = {n}");
        }
    }

    #[test]
    fn two_file_writers_write_every_batch_in_place() {
        let key = Key::generate().unwrap();
        let b = BATCH * CHUNK_LEN;
        for n in [0, 1, b, b + 1, 5 * b + 3] {
            let data = pattern(n);
            let f = tempfile::tempfile().unwrap();
            let len = encrypt_to_file(&key, &mut &data[..], &f, &mut |_| {}).unwrap();
            assert_eq!(len, n as u64);
            let mut sealed = Vec::new();
            (&f).read_to_end(&mut sealed).unwrap();
            assert_eq!(
                sealed.len(),
                HEADER_LEN + n + n.div_ceil(CHUNK_LEN).max(1) * 16
            );
            let mut out = Vec::new();
            decrypt(&key, &mut &sealed[..], &mut out, &mut |_| {}).unwrap();
            assert!(out == data, "n = {n}");
            let g = tempfile::tempfile().unwrap();
            let got = decrypt_to_file(&key, &mut &sealed[..], &g, &mut |_| {}).unwrap();
            assert_eq!(got, n as u64);
            let mut out = Vec::new();
            (&g).read_to_end(&mut out).unwrap();
            assert!(out == data, "n = {n}");
        }
    }

    #[test]
    fn a_writer_failure_is_reported() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let key = Key::generate().unwrap();
        let data = pattern(3 * BATCH * CHUNK_LEN);
        let e = encrypt(&key, &mut &data[..], &mut Full, &mut |_| {}).unwrap_err();
        assert!(matches!(e, Error::Write(_)), "{e}");
    }
}
