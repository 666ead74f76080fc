//! Collecting a domain: read its sources in order, and their files in order,
//! filter, format, tokenize and deduplicate, until the domain's token target
//! is met (DATA-2, FILT-*); a Hub file is downloaded just before it is read,
//! so none is fetched after the target is met (SRC-10).
//!
//! Rows are read in order into batches; a batch is filtered, hashed and
//! tokenized in parallel (results keep their order), then kept one by one
//! while the pool tokenizes the next batch (DATA-17), so the documents kept
//! — and where reading stops — never depend on the thread count (DATA-6). A file is read and parsed on a thread of its own,
//! a few batches ahead of the tokenizing pool (DATA-15); what it read past
//! the point where the domain stopped is thrown away, an error there
//! included, so the output and the errors are those of reading in step.
//! Kept documents go to a [`DocSpool`] file, so memory does not grow with
//! the data; each worker thread keeps its encoder scratch (the piece cache)
//! for the whole run.

use std::ops::{ControlFlow, DerefMut};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use indicatif::ProgressBar;
use rayon::prelude::*;
use rustc_hash::FxHashSet;

use crate::config::{DataConfig, DomainConfig, SourceConfig, SourceKind};
use crate::error::{DataError, Result};
use crate::filter::{DropReason, check_length, content_key};
use crate::manifest::{FileStats, SourceStats};
use crate::pack::DocSpool;
use crate::sources::{self, Candidate, FileDigest, HubOptions, SourceFile, digest_file};
use crate::tokenizer::TokenEncoder;

/// Candidates tokenized per parallel batch.
const BATCH: usize = 256;
/// Batches the reading thread may have ready ahead of the tokenizers.
const READ_AHEAD: usize = 2;

/// A domain's kept documents, as tokens, in reading order.
#[derive(Debug)]
pub struct DomainDocs {
    /// The kept documents' tokens, spooled to a file.
    pub docs: DocSpool,
    /// Per source statistics.
    pub sources: Vec<SourceStats>,
}

/// Each worker thread's encoder scratch, kept across batches.
pub struct ThreadScratch<S> {
    slots: Vec<Mutex<S>>,
}

impl<S: Default> ThreadScratch<S> {
    /// One scratch per thread of `pool`.
    pub fn new(pool: &rayon::ThreadPool) -> Self {
        let slots = (0..pool.current_num_threads().max(1))
            .map(|_| Mutex::new(S::default()))
            .collect();
        Self { slots }
    }

    /// The calling worker's scratch; a fresh one if it is busy (never in practice).
    fn get(&self) -> ScratchRef<'_, S> {
        let slot = rayon::current_thread_index().and_then(|i| self.slots.get(i));
        match slot.and_then(|m| m.try_lock().ok()) {
            Some(guard) => ScratchRef::Shared(guard),
            None => ScratchRef::Own(S::default()),
        }
    }
}

enum ScratchRef<'a, S> {
    Shared(MutexGuard<'a, S>),
    Own(S),
}

impl<S> std::ops::Deref for ScratchRef<'_, S> {
    type Target = S;
    fn deref(&self) -> &S {
        match self {
            Self::Shared(g) => g,
            Self::Own(s) => s,
        }
    }
}

impl<S> DerefMut for ScratchRef<'_, S> {
    fn deref_mut(&mut self) -> &mut S {
        match self {
            Self::Shared(g) => g.deref_mut(),
            Self::Own(s) => s,
        }
    }
}

/// Shared state of one prepare run.
pub struct Collector<'a, E: TokenEncoder> {
    /// The config.
    pub config: &'a DataConfig,
    /// Folder that relative local paths start from.
    pub base: &'a Path,
    /// Hub access.
    pub hub: &'a HubOptions,
    /// The encoder.
    pub encoder: &'a E,
    /// The worker pool.
    pub pool: &'a rayon::ThreadPool,
    /// Per worker thread encoder scratch.
    pub scratch: &'a ThreadScratch<E::Scratch>,
    /// Content keys of every kept document so far (all domains; empty
    /// when `dedup` is off).
    pub seen: FxHashSet<[u8; 16]>,
    /// Progress display.
    pub progress: &'a ProgressBar,
}

/// A candidate after the parallel stage.
enum Processed {
    Drop(DropReason),
    Doc { key: [u8; 16], ids: Vec<u32> },
}

/// Running totals of one domain.
struct Budget {
    target: Option<u64>,
    tokens: u64,
}

impl Budget {
    fn reached(&self) -> bool {
        self.target.is_some_and(|t| self.tokens >= t)
    }
}

impl<E: TokenEncoder> Collector<'_, E> {
    /// Reads `domain`'s sources in order until its target is met; the
    /// documents are spooled to `spool`.
    pub fn collect(&mut self, domain: &DomainConfig, spool: &Path) -> Result<DomainDocs> {
        let mut out = DomainDocs {
            docs: DocSpool::create(spool)?,
            sources: Vec::new(),
        };
        let mut budget = Budget {
            target: self.config.target_tokens(domain),
            tokens: 0,
        };
        for source in &domain.sources {
            if budget.reached() {
                break;
            }
            let stats = self.collect_source(domain, source, &mut budget, &mut out.docs)?;
            out.sources.push(stats);
        }
        if out.docs.is_empty() {
            let rows_read = out.sources.iter().map(|s| s.records_read).sum();
            return Err(DataError::EmptyDomain {
                domain: domain.name.clone(),
                rows_read,
            });
        }
        Ok(out)
    }

    fn collect_source(
        &mut self,
        domain: &DomainConfig,
        source: &SourceConfig,
        budget: &mut Budget,
        docs: &mut DocSpool,
    ) -> Result<SourceStats> {
        let resolved = sources::resolve(source, self.base, self.hub)?;
        let mut stats = SourceStats {
            domain: domain.name.clone(),
            label: source.label(),
            kind: match source.kind {
                SourceKind::Local => "local".into(),
                SourceKind::Hf => "hf".into(),
            },
            repo: source.repo.clone(),
            revision: source.revision.clone(),
            commit: resolved.commit.clone(),
            files: Vec::new(),
            records_read: 0,
            documents_kept: 0,
            tokens_kept: 0,
            drops: Default::default(),
        };
        // Local files are all hashed (the manifest pins every file the path
        // matches): those read while they are read, the rest at the end; Hub
        // files only once fetched, just before they are read, so nothing after
        // the one that meets the target is downloaded (SRC-10).
        let hub = source.kind == SourceKind::Hf;
        let mut local: Vec<Option<FileStats>> = vec![None; resolved.files.len()];
        self.progress
            .set_message(format!("{} ← {}", domain.name, stats.label));
        let mut limit = SourceLimit {
            max_docs: source.max_documents,
            stopped: false,
        };
        for (i, file) in resolved.files.iter().enumerate() {
            if budget.reached() || limit.stopped {
                break;
            }
            let file = &resolved.fetch(file)?;
            let mut sink = Sink {
                source,
                budget,
                limit: &mut limit,
                stats: &mut stats,
                docs,
            };
            let digest = self.read_file(file, &mut sink)?;
            let entry = file_stats(file, self.base, digest);
            match hub {
                true => stats.files.push(entry),
                false => local[i] = Some(entry),
            }
        }
        if !hub {
            for (file, entry) in resolved.files.iter().zip(local) {
                let entry = match entry {
                    Some(entry) => entry,
                    None => file_stats(file, self.base, digest_file(&file.path)?),
                };
                stats.files.push(entry);
            }
        }
        Ok(stats)
    }

    /// Reads `file` on a thread of its own, batches of candidates going to
    /// [`Self::consume`] on this one as they come, until the file ends or a
    /// limit is met (DATA-15). Returns the file's digest, hashed while read.
    fn read_file(&mut self, file: &SourceFile, sink: &mut Sink<'_>) -> Result<FileDigest> {
        let (source, policy) = (sink.source, self.config.pipeline.invalid_utf8);
        let (encoder, scratch) = (self.encoder, self.scratch);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Candidate>>(READ_AHEAD);
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                let mut visit = |c: Candidate| -> Result<ControlFlow<()>> {
                    batch.push(c);
                    if batch.len() < BATCH {
                        return Ok(ControlFlow::Continue(()));
                    }
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    // A closed channel: the consumer stopped; stop reading.
                    Ok(match tx.send(full) {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(_) => ControlFlow::Break(()),
                    })
                };
                let digest = sources::read_candidates(file, source, policy, &mut visit)?;
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                Ok(digest)
            });
            // Batch k+1 is tokenized on the pool while batch k is kept
            // here, in order (DATA-17).
            let mut stopped = false;
            let mut ready: Option<Vec<Processed>> = None;
            for batch in rx.iter() {
                let mut next = None;
                let flow = self.pool.in_place_scope(|scope| {
                    scope.spawn(|_| next = Some(process_batch(batch, source, encoder, scratch)));
                    match ready.take() {
                        Some(processed) => self.keep(processed, sink),
                        None => Ok(ControlFlow::Continue(())),
                    }
                })?;
                if flow.is_break() {
                    stopped = true;
                    break;
                }
                ready = next;
            }
            if let Some(processed) = ready.filter(|_| !stopped) {
                stopped = self.keep(processed, sink)?.is_break();
            }
            drop(rx);
            let read: Result<FileDigest> = reader
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            match read {
                // Read ahead of where the domain stopped: reading in step
                // would never have got there.
                Err(_) if stopped => digest_file(&file.path),
                read => read,
            }
        })
    }

    /// Keeps a processed batch's documents in order until a limit; the
    /// progress bar moves once per batch.
    fn keep(&mut self, processed: Vec<Processed>, sink: &mut Sink<'_>) -> Result<ControlFlow<()>> {
        let before = sink.budget.tokens;
        let flow = self.keep_documents(processed, sink);
        self.progress.inc(sink.budget.tokens - before);
        flow
    }

    fn keep_documents(
        &mut self,
        processed: Vec<Processed>,
        sink: &mut Sink<'_>,
    ) -> Result<ControlFlow<()>> {
        let Sink {
            budget,
            limit,
            stats,
            docs,
            ..
        } = sink;
        if budget.reached() || limit.stopped {
            return Ok(ControlFlow::Break(()));
        }
        for item in processed {
            stats.records_read += 1;
            let (key, ids) = match item {
                Processed::Drop(reason) => {
                    *stats.drops.entry(reason).or_default() += 1;
                    continue;
                }
                Processed::Doc { key, ids } => (key, ids),
            };
            if self.config.pipeline.dedup && !self.seen.insert(key) {
                *stats.drops.entry(DropReason::Duplicate).or_default() += 1;
                continue;
            }
            budget.tokens += ids.len() as u64 + 1;
            stats.documents_kept += 1;
            stats.tokens_kept += ids.len() as u64;
            docs.push(&ids)?;
            limit.stopped = limit.max_docs.is_some_and(|m| stats.documents_kept >= m);
            if budget.reached() || limit.stopped {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}

struct SourceLimit {
    max_docs: Option<u64>,
    stopped: bool,
}

/// Where one source's kept documents go, and its limits and counts.
struct Sink<'a> {
    source: &'a SourceConfig,
    budget: &'a mut Budget,
    limit: &'a mut SourceLimit,
    stats: &'a mut SourceStats,
    docs: &'a mut DocSpool,
}

/// Filters, tokenizes and keys a batch on the pool, in order.
fn process_batch<E: TokenEncoder>(
    batch: Vec<Candidate>,
    source: &SourceConfig,
    encoder: &E,
    scratch: &ThreadScratch<E::Scratch>,
) -> Vec<Processed> {
    batch
        .into_par_iter()
        .map_init(
            || scratch.get(),
            |scratch, candidate| process(candidate, source, encoder, scratch),
        )
        .collect()
}

fn process<E: TokenEncoder>(
    candidate: Candidate,
    source: &SourceConfig,
    encoder: &E,
    scratch: &mut E::Scratch,
) -> Processed {
    let text = match candidate {
        Candidate::Dropped(reason) => return Processed::Drop(reason),
        Candidate::Doc(_, text) => text,
    };
    if let Err(reason) = check_length(&text, source) {
        return Processed::Drop(reason);
    }
    let mut ids = Vec::with_capacity(text.len() / 3);
    encoder.encode_into(&text, scratch, &mut ids);
    Processed::Doc {
        key: content_key(&text),
        ids,
    }
}

/// The manifest entry of `file` (its name relative to `base` where it is under it).
fn file_stats(file: &SourceFile, base: &Path, digest: FileDigest) -> FileStats {
    let name = Path::new(&file.name)
        .strip_prefix(base)
        .map(|p| p.to_string_lossy().to_string())
        .unwrap_or_else(|_| file.name.clone());
    FileStats {
        name,
        sha256: digest.sha256,
        bytes: digest.bytes,
    }
}
