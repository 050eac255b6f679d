//! The sealed store: redb tables whose values are sealed records, transactions across tables,
//! and the group committer.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use redb::{
    ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _, TableDefinition,
};
use zeroize::Zeroizing;

use crate::audit::{self, AuditEntry, AuditHead, AuditSigner, SignedAuditHead, SignedAuditRecord};
use crate::error::StoreError;
use crate::seal::Sealer;
use crate::SealingKey;

/// Largest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Largest value accepted, in bytes (before sealing).
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;
/// Most write closures the group committer puts in one redb transaction.
pub const MAX_BATCH: usize = 1024;

/// redb table holding the key check record and the state record.
const META_NAME: &str = "veil.meta";
/// redb table holding the audit records, keyed by seq.
const AUDIT_NAME: &str = "veil.audit";
const META_DEF: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new(META_NAME);
const AUDIT_DEF: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new(AUDIT_NAME);
const CHECK_KEY: &[u8] = b"check";
const STATE_KEY: &[u8] = b"state";
/// Plaintext of the key check record.
const CHECK_PLAINTEXT: &[u8] = b"veil-store-v1 key check";

/// A logical table. Names are 1 to 64 characters from `a-z`, `0-9` and `_`; the store's own
/// tables have a `.` in their redb name, so they cannot collide with these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table(&'static str);

impl Table {
    /// Sessions (policies), by name.
    pub const SESSIONS: Table = Table("sessions");
    /// Pending session updates awaiting approvals.
    pub const PENDING: Table = Table("pending");
    /// Secrets, by session and name.
    pub const SECRETS: Table = Table("secrets");
    /// Attestation nonces issued and not yet used.
    pub const NONCES: Table = Table("nonces");
    /// Volume freshness tags.
    pub const VOLUME_TAGS: Table = Table("volume_tags");
    /// Application metadata (CA state, settings).
    pub const META: Table = Table("meta");

    /// Another table. The name is checked when the table is used
    /// ([`StoreError::InvalidTable`]).
    pub const fn new(name: &'static str) -> Table {
        Table(name)
    }

    /// The table's name.
    pub fn name(&self) -> &'static str {
        self.0
    }

    fn check(self) -> Result<TableDefinition<'static, &'static [u8], &'static [u8]>, StoreError> {
        let ok = !self.0.is_empty()
            && self.0.len() <= 64
            && self
                .0
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(TableDefinition::new(self.0))
        } else {
            Err(StoreError::InvalidTable {
                name: self.0.to_owned(),
            })
        }
    }
}

/// How to open a store. `StoreOptions::default()` is right for the CAS.
#[derive(Clone)]
pub struct StoreOptions {
    verify_on_open: bool,
    cache_size: usize,
    audit_signer: Option<Arc<dyn AuditSigner>>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            verify_on_open: true,
            cache_size: 64 * 1024 * 1024,
            audit_signer: None,
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("verify_on_open", &self.verify_on_open)
            .field("cache_size", &self.cache_size)
            .field("audit_signer", &self.audit_signer.as_ref().map(|_| ".."))
            .finish()
    }
}

impl StoreOptions {
    /// The defaults.
    pub fn new() -> StoreOptions {
        StoreOptions::default()
    }

    /// Verify every page's checksum when opening (default true). A damaged file then fails to
    /// open with [`StoreError::Corrupted`] instead of failing later. Costs one read of the file.
    pub fn verify_on_open(mut self, yes: bool) -> StoreOptions {
        self.verify_on_open = yes;
        self
    }

    /// redb's page cache size in bytes (default 64 MiB).
    pub fn cache_size(mut self, bytes: usize) -> StoreOptions {
        self.cache_size = bytes;
        self
    }

    /// Sign audit records with this signer instead of the Ed25519 key derived from the sealing
    /// key. A store keeps using the signer it was created with ([`StoreError::AuditKeyChanged`]).
    pub fn audit_signer(mut self, signer: Arc<dyn AuditSigner>) -> StoreOptions {
        self.audit_signer = Some(signer);
        self
    }
}

/// The store's own state, sealed in `veil.meta/state`.
#[derive(Clone)]
struct State {
    /// Number of committed write transactions; the record version bound into every record.
    generation: u64,
    audit: AuditHead,
    audit_public_key: Vec<u8>,
}

impl State {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 8 + 32 + 2 + self.audit_public_key.len());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.audit.next_seq.to_be_bytes());
        out.extend_from_slice(&self.audit.hash);
        let len = u16::try_from(self.audit_public_key.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.audit_public_key);
        out
    }

    fn decode(b: &[u8]) -> Option<State> {
        let generation = u64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
        let next_seq = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
        let hash: [u8; 32] = b.get(16..48)?.try_into().ok()?;
        let len = usize::from(u16::from_be_bytes(b.get(48..50)?.try_into().ok()?));
        let pk = b.get(50..)?;
        if pk.len() != len {
            return None;
        }
        Some(State {
            generation,
            audit: AuditHead { next_seq, hash },
            audit_public_key: pk.to_vec(),
        })
    }
}

struct Shared {
    db: redb::Database,
    sealer: Sealer,
    signer: Arc<dyn AuditSigner>,
    path: PathBuf,
}

type Job = Box<dyn FnOnce(&mut WriteTx<'_>) -> bool + Send>;

struct Request {
    job: Job,
    done: mpsc::SyncSender<Result<(), StoreError>>,
}

struct Committer {
    sender: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has answered every queued request.
        self.sender = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A sealed store. Cheap to clone; all clones share one database and one group committer.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    committer: Arc<Mutex<Committer>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Open the store at `path`, creating it if it does not exist, with default options.
    ///
    /// Fails with [`StoreError::WrongKey`] if it was sealed with another key,
    /// [`StoreError::Corrupted`] if redb finds the file damaged, [`StoreError::Tampered`] if the
    /// store's own state record fails authentication.
    pub fn open(path: impl AsRef<Path>, key: &SealingKey) -> Result<Store, StoreError> {
        Store::open_with(path, key, StoreOptions::default())
    }

    /// Open with options.
    pub fn open_with(
        path: impl AsRef<Path>,
        key: &SealingKey,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let path = path.as_ref().to_owned();
        let db = redb::Database::builder()
            .set_cache_size(options.cache_size)
            .set_check_integrity_on_open(options.verify_on_open)
            .create(&path)?;
        let signer: Arc<dyn AuditSigner> = match options.audit_signer {
            Some(s) => s,
            None => Arc::new(audit::Ed25519AuditSigner::derive(key)?),
        };
        let shared = Arc::new(Shared {
            db,
            sealer: Sealer::new(key)?,
            signer,
            path,
        });
        shared.init()?;
        let (sender, receiver) = mpsc::channel::<Request>();
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("veil-store-commit".into())
            .spawn(move || for_thread.run_committer(&receiver))
            .map_err(StoreError::Io)?;
        Ok(Store {
            shared,
            committer: Arc::new(Mutex::new(Committer {
                sender: Some(sender),
                thread: Some(thread),
            })),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Run `f` in a read transaction: a consistent snapshot across all tables.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&ReadTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self.shared.db.begin_read().map_err(StoreError::from)?;
        let state = self.shared.read_state_ro(&tx)?;
        let r = ReadTx {
            shared: &self.shared,
            tx,
            state,
        };
        f(&r)
    }

    /// Run `f` in its own write transaction and commit it durably (fsync) before returning.
    /// If `f` returns an error nothing it wrote is kept.
    ///
    /// Write transactions are serialized; do not call [`Store::write`] or
    /// [`Store::write_grouped`] from inside `f` (it would wait for itself).
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.shared.write_one(f).map(|(v, _)| v)
    }

    /// Like [`Store::write`], but `f` is batched with other threads' closures into one redb
    /// transaction and one fsync. Returns only after that transaction committed durably; if the
    /// commit fails, every caller in the batch gets the error. `f` runs on the committer thread
    /// and sees the writes of closures batched before it. If `f` returns an error (or panics),
    /// only its own writes are dropped.
    ///
    /// Keep `f` short and free of I/O: the whole batch waits for it. Do not call the store's
    /// write methods from inside `f`.
    pub fn write_grouped<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let slot: Arc<Mutex<Option<Result<T, E>>>> = Arc::new(Mutex::new(None));
        let slot_in = Arc::clone(&slot);
        let job: Job = Box::new(move |w| {
            let r = f(w);
            let ok = r.is_ok();
            if let Ok(mut g) = slot_in.lock() {
                *g = Some(r);
            }
            ok
        });
        let (done, wait) = mpsc::sync_channel(1);
        {
            let c = self
                .committer
                .lock()
                .map_err(|_| StoreError::CommitterStopped)?;
            let sender = c.sender.as_ref().ok_or(StoreError::CommitterStopped)?;
            sender
                .send(Request { job, done })
                .map_err(|_| StoreError::CommitterStopped)?;
        }
        let committed = wait.recv().map_err(|_| StoreError::CommitterStopped)?;
        let outcome = slot.lock().ok().and_then(|mut g| g.take());
        match outcome {
            None => Err(StoreError::Panicked.into()),
            Some(Err(e)) => Err(e),
            Some(Ok(v)) => {
                committed?;
                Ok(v)
            }
        }
    }

    /// Append audit records in their own durable transaction and return them signed.
    pub fn append_audit(
        &self,
        entries: Vec<AuditEntry>,
    ) -> Result<Vec<SignedAuditRecord>, StoreError> {
        self.shared
            .write_one(|tx| {
                for e in entries {
                    tx.audit(e)?;
                }
                Ok::<_, StoreError>(())
            })
            .map(|((), records)| records)
    }

    /// The raw Ed25519 public key that verifies this store's audit records.
    pub fn audit_public_key(&self) -> Vec<u8> {
        self.shared.signer.public_key()
    }

    /// The audit chain's current head.
    pub fn audit_head(&self) -> Result<AuditHead, StoreError> {
        self.read(|tx| Ok(tx.audit_head()))
    }

    /// The current head, signed: give it to clients to pin.
    pub fn signed_audit_head(&self) -> Result<SignedAuditHead, StoreError> {
        Ok(self.audit_head()?.sign(self.shared.signer.as_ref()))
    }

    /// Write the whole audit log as JSON lines with a signed head (see
    /// [`audit::write_export`]), from one consistent snapshot.
    pub fn export_audit(&self, out: &mut dyn std::io::Write) -> Result<(), StoreError> {
        let (records, head) = self
            .read(|tx| Ok::<_, StoreError>((tx.audit_records(0, usize::MAX)?, tx.audit_head())))?;
        let signed = head.sign(self.shared.signer.as_ref());
        audit::write_export(&records, &signed, out).map_err(StoreError::Io)
    }

    /// Write up to `limit` audit records from `from_seq` as JSON lines, then
    /// the signed head, from one consistent snapshot: a page of
    /// [`Store::export_audit`]. Concatenating the pages' records (each page
    /// without its head line but the last) gives the whole export.
    pub fn export_audit_page(
        &self,
        from_seq: u64,
        limit: usize,
        out: &mut dyn std::io::Write,
    ) -> Result<(), StoreError> {
        let (records, head) = self.read(|tx| {
            Ok::<_, StoreError>((tx.audit_records(from_seq, limit)?, tx.audit_head()))
        })?;
        let signed = head.sign(self.shared.signer.as_ref());
        audit::write_export(&records, &signed, out).map_err(StoreError::Io)
    }

    /// Read and verify the whole audit log against this store's public key and the head kept in
    /// the sealed state record.
    pub fn verify_audit(&self) -> Result<audit::VerifiedChain, StoreError> {
        let (records, head) = self
            .read(|tx| Ok::<_, StoreError>((tx.audit_records(0, usize::MAX)?, tx.audit_head())))?;
        let chain = audit::verify(&records, &self.audit_public_key())?;
        chain.check_head(&head)?;
        if chain.head != head {
            return Err(crate::AuditError::HeadMismatch {
                seq: chain.head.next_seq.saturating_sub(1),
            }
            .into());
        }
        Ok(chain)
    }
}

impl Shared {
    fn init(&self) -> Result<(), StoreError> {
        let rtx = self.db.begin_read()?;
        let check = match rtx.open_table(META_DEF) {
            Ok(t) => t.get(CHECK_KEY)?.map(|g| g.value().to_vec()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        drop(rtx);
        match check {
            Some(sealed) => {
                let plain = self
                    .sealer
                    .open(META_NAME, CHECK_KEY, &sealed, u64::MAX)
                    .map_err(|_| StoreError::WrongKey {
                        path: self.path.clone(),
                    })?;
                if plain.1.as_slice() != CHECK_PLAINTEXT {
                    return Err(StoreError::WrongKey {
                        path: self.path.clone(),
                    });
                }
                let rtx = self.db.begin_read()?;
                let state = self.read_state_ro(&rtx)?;
                if state.audit_public_key != self.signer.public_key() {
                    return Err(StoreError::AuditKeyChanged);
                }
                Ok(())
            }
            None => self.create_fresh(),
        }
    }

    fn create_fresh(&self) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        // A store without a check record but with data had its check record removed.
        for t in tx.list_tables()? {
            use redb::TableHandle as _;
            if t.name() != META_NAME {
                return Err(StoreError::tampered(META_NAME, CHECK_KEY));
            }
        }
        {
            let mut meta = tx.open_table(META_DEF)?;
            if meta.len()? != 0 {
                return Err(StoreError::tampered(META_NAME, CHECK_KEY));
            }
            let check = self.sealer.seal(META_NAME, CHECK_KEY, 0, CHECK_PLAINTEXT)?;
            meta.insert(CHECK_KEY, check.as_slice())?;
            let state = State {
                generation: 0,
                audit: AuditHead::EMPTY,
                audit_public_key: self.signer.public_key(),
            };
            let sealed = self.sealer.seal(META_NAME, STATE_KEY, 0, &state.encode())?;
            meta.insert(STATE_KEY, sealed.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    fn decode_state(&self, sealed: Option<Vec<u8>>) -> Result<State, StoreError> {
        let sealed = sealed.ok_or_else(|| StoreError::tampered(META_NAME, STATE_KEY))?;
        let (generation, plain) = self.sealer.open(META_NAME, STATE_KEY, &sealed, u64::MAX)?;
        let state =
            State::decode(&plain).ok_or_else(|| StoreError::tampered(META_NAME, STATE_KEY))?;
        if state.generation != generation {
            return Err(StoreError::tampered(META_NAME, STATE_KEY));
        }
        Ok(state)
    }

    fn read_state_ro(&self, tx: &redb::ReadTransaction) -> Result<State, StoreError> {
        let t = match tx.open_table(META_DEF) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Err(StoreError::tampered(META_NAME, STATE_KEY))
            }
            Err(e) => return Err(e.into()),
        };
        let sealed = t.get(STATE_KEY)?.map(|g| g.value().to_vec());
        self.decode_state(sealed)
    }

    fn begin(&self) -> Result<(redb::WriteTransaction, State), StoreError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate)?;
        let sealed = {
            let t = tx.open_table(META_DEF)?;
            let v = t.get(STATE_KEY)?.map(|g| g.value().to_vec());
            v
        };
        let state = self.decode_state(sealed)?;
        Ok((tx, state))
    }

    fn finish(&self, tx: redb::WriteTransaction, state: &State) -> Result<(), StoreError> {
        {
            let mut t = tx.open_table(META_DEF)?;
            let sealed =
                self.sealer
                    .seal(META_NAME, STATE_KEY, state.generation, &state.encode())?;
            t.insert(STATE_KEY, sealed.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    fn write_one<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<T, E>,
    ) -> Result<(T, Vec<SignedAuditRecord>), E> {
        let (tx, mut state) = self.begin()?;
        state.generation = state.generation.saturating_add(1);
        let mut w = WriteTx::new(self, &tx, &state);
        let v = f(&mut w)?;
        let records = w.flush(&mut state)?;
        self.finish(tx, &state)?;
        Ok((v, records))
    }

    fn run_committer(&self, receiver: &mpsc::Receiver<Request>) {
        while let Ok(first) = receiver.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&self, batch: Vec<Request>) {
        let (tx, mut state) = match self.begin() {
            Ok(x) => x,
            Err(e) => {
                for r in batch {
                    let _ = r.done.send(Err(e.duplicate()));
                }
                return;
            }
        };
        state.generation = state.generation.saturating_add(1);
        let mut waiting = Vec::with_capacity(batch.len());
        let mut failure: Option<StoreError> = None;
        for Request { job, done } in batch {
            if failure.is_some() {
                waiting.push(done);
                continue;
            }
            let mut w = WriteTx::new(self, &tx, &state);
            match catch_unwind(AssertUnwindSafe(|| job(&mut w))) {
                Ok(true) => match w.flush(&mut state) {
                    Ok(_) => waiting.push(done),
                    Err(e) => {
                        failure = Some(e);
                        waiting.push(done);
                    }
                },
                // The closure failed: its staged writes are dropped; its error is its own.
                Ok(false) => {
                    let _ = done.send(Ok(()));
                }
                Err(_) => {
                    let _ = done.send(Err(StoreError::Panicked));
                }
            }
        }
        let result = match failure {
            Some(e) => Err(e),
            None if waiting.is_empty() => Ok(()),
            None => self.finish(tx, &state),
        };
        for done in waiting {
            let _ = done.send(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(e.duplicate()),
            });
        }
    }
}

fn check_key(key: &[u8]) -> Result<(), StoreError> {
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::TooLarge {
            what: "key",
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// A plaintext value read from the store; zeroized on drop.
pub type Plain = Zeroizing<Vec<u8>>;

/// A read transaction: a snapshot of every table.
pub struct ReadTx<'s> {
    shared: &'s Shared,
    tx: redb::ReadTransaction,
    state: State,
}

impl std::fmt::Debug for ReadTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTx")
            .field("generation", &self.state.generation)
            .finish_non_exhaustive()
    }
}

impl ReadTx<'_> {
    /// The value of `key` in `table`, unsealed, or `None`.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Plain>, StoreError> {
        let def = table.check()?;
        let t = match self.tx.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(g) = t.get(key)? else {
            return Ok(None);
        };
        let (_, plain) =
            self.shared
                .sealer
                .open(table.name(), key, g.value(), self.state.generation)?;
        Ok(Some(plain))
    }

    /// Every entry of `table` whose key starts with `prefix`, in key order, unsealed.
    pub fn list(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Plain)>, StoreError> {
        let def = table.check()?;
        let t = match self.tx.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in t.range(prefix..)? {
            let (k, v) = item?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            let (_, plain) =
                self.shared
                    .sealer
                    .open(table.name(), k, v.value(), self.state.generation)?;
            out.push((k.to_vec(), plain));
        }
        Ok(out)
    }

    /// Number of write transactions committed so far.
    pub fn generation(&self) -> u64 {
        self.state.generation
    }

    /// The audit chain's head in this snapshot.
    pub fn audit_head(&self) -> AuditHead {
        self.state.audit
    }

    /// Up to `limit` audit records from `from_seq` on, unsealed (not verified: use
    /// [`audit::verify`]).
    pub fn audit_records(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<SignedAuditRecord>, StoreError> {
        let t = match self.tx.open_table(AUDIT_DEF) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for item in t.range(from_seq..)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let seq = k.value();
            let key = seq.to_be_bytes();
            let (_, plain) =
                self.shared
                    .sealer
                    .open(AUDIT_NAME, &key, v.value(), self.state.generation)?;
            let rec: SignedAuditRecord = serde_json::from_slice(&plain)
                .map_err(|_| StoreError::tampered(AUDIT_NAME, &key))?;
            if rec.record.seq != seq {
                return Err(StoreError::tampered(AUDIT_NAME, &key));
            }
            out.push(rec);
        }
        Ok(out)
    }
}

type StagedKey = (&'static str, Vec<u8>);
type RawTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// A write transaction. Writes are staged and reach redb only when the closure returns `Ok`;
/// reads see this transaction's own writes.
pub struct WriteTx<'a> {
    shared: &'a Shared,
    tx: &'a redb::WriteTransaction,
    generation: u64,
    audit_head: AuditHead,
    staged: BTreeMap<StagedKey, Option<Plain>>,
    staged_audit: Vec<AuditEntry>,
}

impl std::fmt::Debug for WriteTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("generation", &self.generation)
            .field("staged", &self.staged.len())
            .finish_non_exhaustive()
    }
}

impl<'a> WriteTx<'a> {
    fn new(shared: &'a Shared, tx: &'a redb::WriteTransaction, state: &State) -> WriteTx<'a> {
        WriteTx {
            shared,
            tx,
            generation: state.generation,
            audit_head: state.audit,
            staged: BTreeMap::new(),
            staged_audit: Vec::new(),
        }
    }

    /// The value of `key` in `table`, including this transaction's own writes.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Plain>, StoreError> {
        let def = table.check()?;
        if let Some(v) = self.staged.get(&(table.name(), key.to_vec())) {
            return Ok(v.clone());
        }
        let t = self.tx.open_table(def)?;
        let Some(g) = t.get(key)? else {
            return Ok(None);
        };
        let (_, plain) = self
            .shared
            .sealer
            .open(table.name(), key, g.value(), self.generation)?;
        Ok(Some(plain))
    }

    /// Every entry of `table` whose key starts with `prefix`, in key order, including this
    /// transaction's own writes.
    pub fn list(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Plain)>, StoreError> {
        let def = table.check()?;
        let mut merged: BTreeMap<Vec<u8>, Plain> = BTreeMap::new();
        {
            let t = self.tx.open_table(def)?;
            for item in t.range(prefix..)? {
                let (k, v) = item?;
                let k = k.value();
                if !k.starts_with(prefix) {
                    break;
                }
                let (_, plain) =
                    self.shared
                        .sealer
                        .open(table.name(), k, v.value(), self.generation)?;
                merged.insert(k.to_vec(), plain);
            }
        }
        for ((t, k), v) in self.staged.range((table.name(), prefix.to_vec())..) {
            if *t != table.name() || !k.starts_with(prefix) {
                break;
            }
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }

    /// Set `key` in `table` to `value` (sealed when the transaction commits).
    pub fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        table.check()?;
        check_key(key)?;
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::TooLarge {
                what: "value",
                len: value.len(),
                max: MAX_VALUE_LEN,
            });
        }
        self.staged.insert(
            (table.name(), key.to_vec()),
            Some(Zeroizing::new(value.to_vec())),
        );
        Ok(())
    }

    /// Remove `key` from `table`; returns whether it was there.
    pub fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let existed = self.get(table, key)?.is_some();
        self.staged.insert((table.name(), key.to_vec()), None);
        Ok(existed)
    }

    /// Append an audit record in this transaction: it commits together with this
    /// transaction's other writes, or not at all.
    pub fn audit(&mut self, entry: AuditEntry) -> Result<(), StoreError> {
        entry.validate()?;
        self.staged_audit.push(entry);
        Ok(())
    }

    /// The generation this transaction will commit as.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The audit head before this closure's records.
    pub fn audit_head(&self) -> AuditHead {
        self.audit_head
    }

    /// Seal and write everything staged into the redb transaction.
    fn flush(self, state: &mut State) -> Result<Vec<SignedAuditRecord>, StoreError> {
        let sealer = &self.shared.sealer;
        let mut current: Option<(&'static str, RawTable<'_>)> = None;
        for ((name, key), value) in &self.staged {
            if current.as_ref().map(|(n, _)| n) != Some(name) {
                drop(current.take());
                let def = Table(name).check()?;
                current = Some((name, self.tx.open_table(def)?));
            }
            let Some((_, t)) = current.as_mut() else {
                continue;
            };
            match value {
                Some(v) => {
                    let sealed = sealer.seal(name, key, self.generation, v)?;
                    t.insert(key.as_slice(), sealed.as_slice())?;
                }
                None => {
                    t.remove(key.as_slice())?;
                }
            }
        }
        drop(current);
        let mut appended = Vec::with_capacity(self.staged_audit.len());
        if !self.staged_audit.is_empty() {
            let mut t = self.tx.open_table(AUDIT_DEF)?;
            let time_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0);
            for e in self.staged_audit {
                let record = audit::AuditRecord {
                    seq: state.audit.next_seq,
                    time_ms,
                    prev_hash: state.audit.hash,
                    kind: e.kind,
                    subject: e.subject,
                    actor: e.actor,
                    detail: e.detail,
                };
                let signed = audit::sign_record(record, self.shared.signer.as_ref());
                let plain = serde_json::to_vec(&signed).map_err(|e| StoreError::Storage {
                    detail: format!("encoding an audit record: {e}"),
                })?;
                let seq = signed.record.seq;
                let sealed =
                    sealer.seal(AUDIT_NAME, &seq.to_be_bytes(), self.generation, &plain)?;
                t.insert(seq, sealed.as_slice())?;
                state.audit = AuditHead {
                    next_seq: seq.saturating_add(1),
                    hash: signed.hash,
                };
                appended.push(signed);
            }
        }
        Ok(appended)
    }
}
