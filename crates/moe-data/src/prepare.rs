//! `moe data prepare`: the whole pipeline from a config to a prepared
//! directory — collect → split → pack → balance → shuffle → write (DATA-*).
//!
//! Everything is written into a temporary sibling directory that is renamed
//! into place at the end, so an interrupted or failed run leaves no
//! half-written output (DATA-5).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::balance::{choose_and_shuffle, ratio};
use crate::collect::{Collector, DomainDocs};
use crate::config::{Balance, DataConfig};
use crate::error::{DataError, Result};
use crate::manifest::{
    BalanceInfo, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, Manifest, ShardInfo,
    TokenizerInfo,
};
use crate::pack::{Packed, Packer};
use crate::shard::write_shard;
use crate::sources::HubOptions;
use crate::split::{Split, assign};
use crate::tokenizer::{EOS_ID, Gpt2Tokenizer, TokenEncoder, VOCAB_SIZE};

/// Options of one prepare run (the config holds everything that shapes the output).
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// The prepared directory to create.
    pub out: PathBuf,
    /// Worker threads (None = all cores). Never changes the output.
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
    if opts.out.exists() && !opts.force {
        return Err(DataError::OutputExists {
            path: opts.out.clone(),
        });
    }
    let base = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.unwrap_or(0))
        .build()
        .map_err(|e| DataError::io(&opts.out, std::io::Error::other(e)))?;
    let bar = progress_bar(opts.progress, config);
    let mut collector = Collector {
        config,
        base: &base,
        hub: &opts.hub,
        encoder,
        pool: &pool,
        seen: HashSet::new(),
        progress: &bar,
    };
    let mut domains = Vec::new();
    for domain in &config.domains {
        domains.push((domain.name.clone(), collector.collect(domain)?));
    }
    bar.finish_and_clear();
    let (shards, mut manifest) = assemble(config, domains, tokenizer_hash)?;
    write_atomically(opts, &shards, &mut manifest)?;
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

/// One shard to write.
struct PendingShard {
    info: ShardInfo,
    tokens: Vec<u16>,
}

/// Splits, packs, balances and shuffles the collected domains.
fn assemble(
    config: &DataConfig,
    domains: Vec<(String, DomainDocs)>,
    tokenizer_hash: &str,
) -> Result<(Vec<PendingShard>, Manifest)> {
    let p = &config.pipeline;
    let splits: Vec<Split> = [Split::Train, Split::Val, Split::Test]
        .into_iter()
        .filter(|s| *s != Split::Test || p.test_fraction > 0.0)
        .collect();
    let mut packed: BTreeMap<(Split, String), Packed> = BTreeMap::new();
    let mut sources = Vec::new();
    for (name, collected) in domains {
        let assignment = assign(
            collected.docs.len(),
            p.val_fraction,
            p.test_fraction,
            p.seed,
            &name,
        );
        for (split, indices) in assignment.iter().filter(|(s, _)| splits.contains(s)) {
            let mut packer = Packer::new(p.block_size);
            indices
                .iter()
                .for_each(|&i| packer.push(&collected.docs[i]));
            let blocks = packer.finish();
            if blocks.stats.blocks == 0 {
                return Err(DataError::SplitTooSmall {
                    domain: name.clone(),
                    split: split.to_string(),
                    tokens: blocks.stats.tail_dropped,
                    block_size: p.block_size,
                });
            }
            packed.insert((*split, name.clone()), blocks);
        }
        sources.extend(collected.sources);
    }
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
    let mut shards = Vec::new();
    for ((split, domain), blocks) in &packed {
        let keep = if *split == Split::Train {
            balanced
        } else {
            None
        };
        let tokens = choose_and_shuffle(blocks, keep, p.seed, &format!("shuffle/{split}/{domain}"));
        let info = ShardInfo {
            split: *split,
            domain: domain.clone(),
            file: format!("{split}/{domain}.bin"),
            documents: blocks.stats.documents,
            tokens: tokens.len() as u64,
            blocks: (tokens.len() / p.block_size) as u64,
            blocks_before_balance: blocks.stats.blocks,
            tail_dropped: blocks.stats.tail_dropped,
            eos_count: tokens.iter().filter(|&&t| t == EOS_ID as u16).count() as u64,
            sha256: String::new(),
        };
        shards.push(PendingShard { info, tokens });
    }
    // Shards in config domain order within each split, for readable manifests.
    let order: Vec<&str> = config.domains.iter().map(|d| d.name.as_str()).collect();
    shards.sort_by_key(|s| (s.info.split, order.iter().position(|d| *d == s.info.domain)));
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

/// Writes shards and manifest into a temporary directory, then renames it to `opts.out`.
fn write_atomically(
    opts: &PrepareOptions,
    shards: &[PendingShard],
    manifest: &mut Manifest,
) -> Result<()> {
    let out = &opts.out;
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
    let result =
        write_into(&tmp, shards, manifest).and_then(|_| replace_dir(&tmp, out, opts.force));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn write_into(dir: &Path, shards: &[PendingShard], manifest: &mut Manifest) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    }
    for shard in shards {
        let path = dir.join(&shard.info.file);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|e| DataError::io(folder, e))?;
        }
        let sha256 = write_shard(&path, &shard.tokens, manifest.block_size)?;
        manifest.shards.push(ShardInfo {
            sha256,
            ..shard.info.clone()
        });
    }
    let path = dir.join(MANIFEST_FILE);
    std::fs::write(&path, manifest.to_json()).map_err(|e| DataError::io(&path, e))
}

fn replace_dir(tmp: &Path, out: &Path, force: bool) -> Result<()> {
    if out.exists() {
        if !force {
            return Err(DataError::OutputExists {
                path: out.to_path_buf(),
            });
        }
        let old = tmp.with_extension("old");
        std::fs::rename(out, &old).map_err(|e| DataError::io(out, e))?;
        std::fs::rename(tmp, out).map_err(|e| DataError::io(out, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| DataError::io(&old, e))
    } else {
        std::fs::rename(tmp, out).map_err(|e| DataError::io(out, e))
    }
}
