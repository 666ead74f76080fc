//! `moe data prepare`: the whole pipeline from a config to a prepared
//! directory — collect → split → pack → balance → shuffle → write (DATA-*).
//!
//! Everything is written into a temporary sibling directory that is renamed
//! into place at the end, so an interrupted or failed run leaves no
//! half-written output (DATA-5).
//!
//! Tokens never pile up in memory: collected documents are spooled to a file
//! per domain (under `.work/` in the temporary directory, removed before the
//! rename); packing notes which stretches of a spool make up each (split,
//! domain), and the shards are written block by block straight from the
//! spools (DATA-18). Peak memory is the tokenizer, the dedup keys and
//! per-document lengths, whatever the size of the data.

use std::collections::BTreeMap;

use rustc_hash::FxHashSet;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::balance::{ratio, shuffle_purpose, write_shard};
use crate::collect::{Collector, DomainDocs, ThreadScratch};
use crate::config::{Balance, DataConfig};
use crate::error::{DataError, Result};
use crate::manifest::{
    BalanceInfo, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, Manifest, ShardInfo,
    SourceStats, TokenizerInfo,
};
use crate::pack::{DocSpool, PackedFile, Packer};
use crate::sources::HubOptions;
use crate::split::{Split, assign};
use crate::tokenizer::{EOS_ID, Gpt2Tokenizer, TokenEncoder, VOCAB_SIZE};
use moe_hub::TempPath;

mod concurrent;
mod guard;
pub use guard::MAX_THREADS;
use guard::{check_replaceable, check_threads};

/// Options of one prepare run (the config holds everything that shapes the output).
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// The prepared directory to create.
    pub out: PathBuf,
    /// Worker threads (None = all cores; 1..=[`MAX_THREADS`]). Never changes the output.
    pub threads: Option<usize>,
    /// Replace `out` if it exists.
    pub force: bool,
    /// Hub access.
    pub hub: HubOptions,
    /// Draw progress bars on stderr.
    pub progress: bool,
}

/// Prepares `config` (read from `config_path`) into `opts.out`; returns the manifest.
pub fn prepare(config: &DataConfig, config_path: &Path, opts: &PrepareOptions) -> Result<Manifest> {
    let tokenizer = Gpt2Tokenizer::embedded()?;
    prepare_with(config, config_path, opts, &tokenizer, tokenizer.hash())
}

/// [`prepare`] with any encoder that gives GPT-2 ids.
pub fn prepare_with<E: TokenEncoder>(
    config: &DataConfig,
    config_path: &Path,
    opts: &PrepareOptions,
    encoder: &E,
    tokenizer_hash: &str,
) -> Result<Manifest> {
    let threads = check_threads(opts.threads)?;
    let base = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if std::fs::symlink_metadata(&opts.out).is_ok() {
        if !opts.force {
            return Err(DataError::OutputExists {
                path: opts.out.clone(),
            });
        }
        check_replaceable(&opts.out, config_path, config, &base)?;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| DataError::io(&opts.out, std::io::Error::other(e)))?;
    let tmp = temp_dir(&opts.out)?;
    let work = tmp.path().join(".work");
    std::fs::create_dir_all(&work).map_err(|e| DataError::io(&work, e))?;
    let bar = progress_bar(opts.progress, config);
    let scratch = ThreadScratch::new(&pool);
    let mut collector = Collector {
        config,
        base: &base,
        hub: &opts.hub,
        encoder,
        pool: &pool,
        scratch: &scratch,
        seen: FxHashSet::default(),
        progress: &bar,
    };
    let mut domains = Vec::new();
    for domain in &config.domains {
        let spool = work.join(format!("{}.docs", domain.name));
        domains.push((domain.name.clone(), collector.collect(domain, &spool)?));
    }
    bar.finish_and_clear();
    let (shards, mut manifest) = assemble(config, domains, tokenizer_hash)?;
    write_into(tmp.path(), &shards, &mut manifest, &pool)?;
    std::fs::remove_dir_all(&work).map_err(|e| DataError::io(&work, e))?;
    replace_dir(tmp, &opts.out, opts.force)?;
    Ok(manifest)
}

fn progress_bar(enabled: bool, config: &DataConfig) -> ProgressBar {
    let total: Option<u64> = config.domains.iter().map(|d| config.target_tokens(d)).sum();
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    let template = "{msg:30} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} tokens ({per_sec}, eta {eta})";
    if let Ok(style) = ProgressStyle::with_template(if total.is_some() {
        template
    } else {
        "{spinner} {msg} {human_pos} tokens ({per_sec})"
    }) {
        bar.set_style(style);
    }
    if !enabled {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// One shard to write: the first `keep` blocks of `packed` in a seeded order.
struct PendingShard {
    info: ShardInfo,
    packed: PackedFile,
    keep: usize,
    seed: u64,
    purpose: String,
}

/// Splits and packs the collected domains (views of their spools), then
/// decides balance and shuffle; the shards are written by [`write_into`].
fn assemble(
    config: &DataConfig,
    domains: Vec<(String, DomainDocs)>,
    tokenizer_hash: &str,
) -> Result<(Vec<PendingShard>, Manifest)> {
    let p = &config.pipeline;
    let (packed, sources) = pack_all(config, domains)?;
    let train_tokens: Vec<u64> = packed
        .iter()
        .filter(|((s, _), _)| *s == Split::Train)
        .map(|(_, b)| b.stats.tokens)
        .collect();
    let token_ratio_before = ratio(&train_tokens);
    let mut warnings = Vec::new();
    if token_ratio_before > p.imbalance_warn_ratio {
        warnings.push(format!(
            "train token counts differ by {token_ratio_before:.2}× across domains (warn above {}×){}",
            p.imbalance_warn_ratio,
            if p.balance == Balance::Tokens { "; balancing drops blocks of the larger domains" } else { "" }
        ));
    }
    let balanced = (p.balance == Balance::Tokens).then(|| {
        packed
            .iter()
            .filter(|((s, _), _)| *s == Split::Train)
            .map(|(_, b)| b.n_blocks())
            .min()
            .unwrap_or(0)
    });
    let shards = pending_shards(config, packed, balanced);
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        format_version: MANIFEST_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        config: config.clone(),
        tokenizer: TokenizerInfo {
            kind: "gpt2-bpe".into(),
            sha256: tokenizer_hash.into(),
            vocab_size: VOCAB_SIZE,
            eos_id: EOS_ID,
        },
        block_size: p.block_size,
        sources,
        shards: Vec::new(),
        balance: BalanceInfo {
            mode: p.balance,
            train_blocks_per_domain: balanced.map(|b| b as u64),
            token_ratio_before,
        },
        warnings,
    };
    Ok((shards, manifest))
}

/// Packed files of every (split, domain) and the sources read; a split
/// with no whole block is an error.
#[allow(clippy::type_complexity)]
fn pack_all(
    config: &DataConfig,
    domains: Vec<(String, DomainDocs)>,
) -> Result<(BTreeMap<(Split, String), PackedFile>, Vec<SourceStats>)> {
    let p = &config.pipeline;
    let splits: Vec<Split> = [Split::Train, Split::Val, Split::Test]
        .into_iter()
        .filter(|s| *s != Split::Test || p.test_fraction > 0.0)
        .collect();
    let mut packed = BTreeMap::new();
    let mut sources = Vec::new();
    for (name, collected) in domains {
        for (split, blocks) in pack_domain(config, &name, collected.docs, &splits)? {
            if blocks.stats.blocks == 0 {
                return Err(DataError::SplitTooSmall {
                    domain: name.clone(),
                    split: split.to_string(),
                    tokens: blocks.stats.tail_dropped,
                    block_size: p.block_size,
                });
            }
            packed.insert((split, name.clone()), blocks);
        }
        sources.extend(collected.sources);
    }
    Ok((packed, sources))
}

/// One pending shard per packed file, train shards cut to `balanced`
/// blocks; in config domain order within each split, for readable manifests.
fn pending_shards(
    config: &DataConfig,
    packed: BTreeMap<(Split, String), PackedFile>,
    balanced: Option<usize>,
) -> Vec<PendingShard> {
    let p = &config.pipeline;
    let mut shards = Vec::new();
    for ((split, domain), blocks) in packed {
        let keep = if split == Split::Train {
            balanced
        } else {
            None
        };
        let keep = keep.unwrap_or(usize::MAX).min(blocks.n_blocks());
        let info = ShardInfo {
            split,
            domain: domain.clone(),
            file: format!("{split}/{domain}.bin"),
            documents: blocks.stats.documents,
            tokens: (keep * p.block_size) as u64,
            blocks: keep as u64,
            blocks_before_balance: blocks.stats.blocks,
            tail_dropped: blocks.stats.tail_dropped,
            eos_count: 0, // counted while writing
            sha256: String::new(),
        };
        let purpose = shuffle_purpose(split, &domain);
        shards.push(PendingShard {
            info,
            packed: blocks,
            keep,
            seed: p.seed,
            purpose,
        });
    }
    let order: Vec<&str> = config.domains.iter().map(|d| d.name.as_str()).collect();
    shards.sort_by_key(|s| (s.info.split, order.iter().position(|d| *d == s.info.domain)));
    shards
}

/// Assigns `docs` to splits (SPLIT-*) and packs each split present in
/// `splits` as stretches of the spool (no token is read or written here).
fn pack_domain(
    config: &DataConfig,
    domain: &str,
    docs: DocSpool,
    splits: &[Split],
) -> Result<Vec<(Split, PackedFile)>> {
    let p = &config.pipeline;
    let spool = docs.finish()?;
    let assignment = assign(spool.len(), p.val_fraction, p.test_fraction, p.seed, domain);
    // Index into `packers` of each document's split; NONE: a split not written.
    const NONE: u8 = u8::MAX;
    let mut split_of = vec![NONE; spool.len()];
    let mut packers = Vec::new();
    for (split, indices) in assignment.iter().filter(|(s, _)| splits.contains(s)) {
        indices
            .iter()
            .for_each(|&i| split_of[i] = packers.len() as u8);
        packers.push((*split, Packer::new(p.block_size)));
    }
    drop(assignment);
    for ((start, len), &k) in spool.documents().zip(&split_of) {
        if k != NONE {
            packers[k as usize].1.push(start, len);
        }
    }
    Ok(packers
        .into_iter()
        .map(|(split, packer)| (split, packer.finish(&spool.path)))
        .collect())
}

/// A fresh temporary sibling of `out`, removed when the guard drops (an
/// error or a panic anywhere in the pipeline, DATA-5, DATA-8) or when the
/// process gets SIGINT/SIGTERM (DATA-12). After the rename into place there
/// is nothing left to remove.
fn temp_dir(out: &Path) -> Result<TempPath> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "prepared".into());
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    }
    Ok(TempPath::new(tmp))
}

/// Writes the shards, several at once (DATA-19), and the manifest, which
/// lists them in their order.
fn write_into(
    dir: &Path,
    shards: &[PendingShard],
    manifest: &mut Manifest,
    pool: &rayon::ThreadPool,
) -> Result<()> {
    for shard in shards {
        if let Some(folder) = dir.join(&shard.info.file).parent() {
            std::fs::create_dir_all(folder).map_err(|e| DataError::io(folder, e))?;
        }
    }
    let sizes: Vec<u64> = shards.iter().map(|s| s.info.tokens).collect();
    let written = concurrent::largest_first(pool, &sizes, |i| {
        let shard = &shards[i];
        let path = dir.join(&shard.info.file);
        write_shard(&path, &shard.packed, shard.keep, shard.seed, &shard.purpose)
    })?;
    for (shard, written) in shards.iter().zip(written) {
        manifest.shards.push(ShardInfo {
            sha256: written.sha256,
            eos_count: written.eos_count,
            ..shard.info.clone()
        });
    }
    let path = dir.join(MANIFEST_FILE);
    std::fs::write(&path, manifest.to_json()).map_err(|e| DataError::io(&path, e))
}

fn replace_dir(tmp: TempPath, out: &Path, force: bool) -> Result<()> {
    if std::fs::symlink_metadata(out).is_ok() {
        if !force {
            return Err(DataError::OutputExists {
                path: out.to_path_buf(),
            });
        }
        let old = tmp.path().with_extension("old");
        std::fs::rename(out, &old).map_err(|e| DataError::io(out, e))?;
        if let Err(e) = std::fs::rename(tmp.path(), out) {
            let _ = std::fs::rename(&old, out);
            return Err(DataError::io(out, e));
        }
        tmp.keep();
        std::fs::remove_dir_all(&old).map_err(|e| DataError::io(&old, e))
    } else {
        std::fs::rename(tmp.path(), out).map_err(|e| DataError::io(out, e))?;
        tmp.keep();
        Ok(())
    }
}
