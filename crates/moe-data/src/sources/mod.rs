//! Sources: from a `[[domains.sources]]` entry to formatted candidate
//! documents (SRC-*, FMT-*).
//!
//! [`resolve`] turns a source into files (globbing local paths, listing Hub
//! files at one commit) and [`ResolvedSource::fetch`] makes one ready to
//! read (downloading a Hub file); [`read_candidates`] streams one file's rows,
//! applies the row-level filters and the formatting, and hands each
//! candidate document or drop to a visitor.

pub mod hf;
pub mod readers;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::config::{SourceConfig, SourceKind, Utf8Policy};
use crate::error::{DataError, Result};
use crate::filter::{DropReason, check_suffix};
use crate::format::{ArticleAssembler, Template, strip_calc_annotations, wikitext_detokenize};
use readers::RowData;

pub use readers::{FileDigest, digest_file};

pub use hf::{HubOptions, NetOptions};

/// One file of a resolved source.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Name in the manifest: the path as configured, or the name in the Hub repo.
    pub name: String,
    /// Where it is on disk.
    pub path: PathBuf,
}

/// A source resolved to files.
#[derive(Debug, Clone)]
pub struct ResolvedSource {
    /// The Hub commit, for `hf` sources.
    pub commit: Option<String>,
    /// The files, in reading order (a Hub file's path is where it lies once
    /// fetched).
    pub files: Vec<SourceFile>,
    hub: Option<hf::ResolvedHub>,
}

impl ResolvedSource {
    /// `file` (one of [`Self::files`]) on disk, ready to read: a Hub file is
    /// downloaded now unless cached or offline (SRC-10); a local one is as is.
    pub fn fetch(&self, file: &SourceFile) -> Result<SourceFile> {
        match &self.hub {
            None => Ok(file.clone()),
            Some(hub) => Ok(SourceFile {
                name: file.name.clone(),
                path: hub.fetch(&file.name)?,
            }),
        }
    }
}

/// Resolves a source to files; relative local paths are taken from `base`
/// (the config file's folder). Hub files are listed, not downloaded: see
/// [`ResolvedSource::fetch`].
pub fn resolve(source: &SourceConfig, base: &Path, hub: &HubOptions) -> Result<ResolvedSource> {
    match source.kind {
        SourceKind::Local => {
            let pattern = source.local_pattern(base).unwrap_or_default();
            Ok(ResolvedSource {
                commit: None,
                files: glob_files(&pattern)?,
                hub: None,
            })
        }
        SourceKind::Hf => {
            let resolved = hf::resolve(source, hub)?;
            let files = resolved
                .names
                .iter()
                .map(|name| SourceFile {
                    name: name.clone(),
                    path: resolved.cache_path(name),
                })
                .collect();
            Ok(ResolvedSource {
                commit: Some(resolved.commit.clone()),
                files,
                hub: Some(resolved),
            })
        }
    }
}

fn glob_files(pattern: &Path) -> Result<Vec<SourceFile>> {
    let text = pattern.to_string_lossy().to_string();
    if let Some(file) = readable_file(pattern)? {
        return Ok(vec![SourceFile {
            name: text,
            path: file,
        }]);
    }
    if pattern.is_dir() {
        return Err(DataError::Read {
            path: pattern.into(),
            row: None,
            reason: "is a directory; give a file or a glob such as dir/*.jsonl".into(),
        });
    }
    let paths = glob::glob(&text).map_err(|e| DataError::Read {
        path: pattern.into(),
        row: None,
        reason: e.to_string(),
    })?;
    let mut files = Vec::new();
    for path in paths {
        let path = path.map_err(|e| DataError::io(e.path().to_path_buf(), e.into()))?;
        files.extend(readable_file(&path)?);
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::NoFiles { pattern: text });
    }
    Ok(files
        .into_iter()
        .map(|p| SourceFile {
            name: p.to_string_lossy().to_string(),
            path: p,
        })
        .collect())
}

/// `path` if it is a file (through links); None for a directory or
/// nothing; an error for a link that loops or points nowhere (SRC-12).
fn readable_file(path: &Path) -> Result<Option<PathBuf>> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.is_file().then(|| path.to_path_buf())),
        Err(e) if std::fs::symlink_metadata(path).is_ok() => Err(DataError::Read {
            path: path.into(),
            row: None,
            reason: format!(
                "a symbolic link that cannot be followed (a loop, or a missing target): {e}"
            ),
        }),
        Err(_) => Ok(None),
    }
}

/// A row's outcome before tokenization.
#[derive(Debug)]
pub enum Candidate {
    /// A formatted document (row number of its first row, text).
    Doc(u64, String),
    /// A row dropped before formatting was complete.
    Dropped(DropReason),
}

/// Reads one file of `source`, calling `visit` with each candidate; returns
/// the file's digest, hashed while it was read (DATA-14).
pub fn read_candidates(
    file: &SourceFile,
    source: &SourceConfig,
    policy: Utf8Policy,
    visit: &mut dyn FnMut(Candidate) -> Result<ControlFlow<()>>,
) -> Result<FileDigest> {
    let mut fields = source.fields.clone();
    let suffix_idx = source.require_suffix.as_ref().map(|rule| {
        fields
            .iter()
            .position(|f| *f == rule.field)
            .unwrap_or_else(|| {
                fields.push(rule.field.clone());
                fields.len() - 1
            })
    });
    let template = match &source.template {
        Some(t) => Template::parse(t, &source.fields).map_err(|reason| DataError::Read {
            path: file.path.clone(),
            row: None,
            reason,
        })?,
        None => Template::single_field(),
    };
    let mut articles = source.wikitext_articles.then(ArticleAssembler::default);
    let mut article_row = 1u64;
    let finish = |text: String| -> String {
        let text = if source.strip_calc_annotations {
            strip_calc_annotations(&text)
        } else {
            text
        };
        if source.wikitext_detokenize {
            wikitext_detokenize(&text)
        } else {
            text
        }
    };
    let mut on_row = |row: u64, data: RowData| -> Result<ControlFlow<()>> {
        let values = match data {
            RowData::InvalidUtf8 if policy == Utf8Policy::Fail => {
                return Err(DataError::InvalidUtf8 {
                    path: file.path.clone(),
                    row,
                });
            }
            RowData::InvalidUtf8 => return visit(Candidate::Dropped(DropReason::InvalidUtf8)),
            RowData::Values(values) => values,
        };
        if let Err(reason) = check_suffix(suffix_idx.map(|i| values[i].as_str()), source) {
            return visit(Candidate::Dropped(reason));
        }
        let text = template.render(&values);
        match articles.as_mut() {
            None => visit(Candidate::Doc(row, finish(text))),
            Some(assembler) => match assembler.push(&text) {
                None => Ok(ControlFlow::Continue(())),
                Some(article) => {
                    let first_row = std::mem::replace(&mut article_row, row);
                    visit(Candidate::Doc(first_row, finish(article)))
                }
            },
        }
    };
    let digest = readers::for_each_row(&file.path, source.format, &fields, &mut on_row)?;
    if let Some(article) = articles.and_then(ArticleAssembler::finish) {
        let _ = visit(Candidate::Doc(article_row, finish(article)))?;
    }
    Ok(digest)
}
