//! Row readers for the source file formats (text, jsonl, jsonl.gz, parquet).
//!
//! Each reader streams one file and hands every row's requested fields to a
//! visitor, which may stop the read early. Malformed input is an error that
//! names the file and the row (SRC-3); a non-UTF-8 row is reported to the
//! visitor so the configured policy can skip or fail it.
//!
//! A file is hashed while it is read (DATA-14): the bytes pass through
//! SHA-256 on their way to the parser, and whatever the visitor left unread
//! is hashed at the end, so each byte is read from disk once. (Parquet is
//! read by seeking, so its file is hashed in a pass of its own.)

mod json_row;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use sha2::{Digest, Sha256};

use crate::config::FileFormat;
use crate::error::{DataError, Result};

/// What one row yielded.
#[derive(Debug)]
pub enum RowData {
    /// The requested fields' values, in request order (null reads as "").
    Values(Vec<String>),
    /// The row is not valid UTF-8.
    InvalidUtf8,
}

/// Called with each row's 1-based number and data; `Break` stops the file.
pub type Visitor<'a> = dyn FnMut(u64, RowData) -> Result<ControlFlow<()>> + 'a;

/// A whole file's SHA-256 and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// sha256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// A reader that hashes every byte it hands out.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Hashes what is left unread, then the digest of everything.
    fn finish(mut self, path: &Path) -> Result<FileDigest> {
        std::io::copy(&mut self, &mut std::io::sink()).map_err(|e| DataError::io(path, e))?;
        Ok(FileDigest {
            sha256: hex::encode(self.hasher.finalize()),
            bytes: self.bytes,
        })
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The digest of the file at `path`, in a pass of its own.
pub fn digest_file(path: &Path) -> Result<FileDigest> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    Hashing::new(file).finish(path)
}

/// Streams the rows of `path`, extracting `fields` from each; returns the
/// file's digest, hashed on the way (the part after a `Break` included).
pub fn for_each_row(
    path: &Path,
    format: FileFormat,
    fields: &[String],
    visit: &mut Visitor<'_>,
) -> Result<FileDigest> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut src = Hashing::new(file);
    match format {
        FileFormat::Text => read_text(path, &mut src, visit)?,
        FileFormat::Jsonl => read_jsonl(
            path,
            BufReader::with_capacity(1 << 20, &mut src),
            fields,
            visit,
        )?,
        FileFormat::JsonlGz => {
            let gz = flate2::read::MultiGzDecoder::new(BufReader::new(&mut src));
            read_jsonl(path, BufReader::with_capacity(1 << 20, gz), fields, visit)?
        }
        FileFormat::Parquet => {
            let digest = src.finish(path)?;
            read_parquet(
                path,
                File::open(path).map_err(|e| DataError::io(path, e))?,
                fields,
                visit,
            )?;
            return Ok(digest);
        }
    }
    src.finish(path)
}

/// The longest row (a jsonl line, a text file) read (SRC-11): far above any
/// document worth keeping (the seed configs keep up to 10 000 characters),
/// and low enough that one runaway line fails before it costs gigabytes.
pub const MAX_ROW_BYTES: u64 = 64 << 20;

fn too_long(path: &Path, row: u64) -> DataError {
    DataError::Read {
        path: path.to_path_buf(),
        row: Some(row),
        reason: format!(
            "the row is longer than {} MiB, the most a row may hold (a file with no line breaks?)",
            MAX_ROW_BYTES >> 20
        ),
    }
}

fn read_text(path: &Path, file: impl Read, visit: &mut Visitor<'_>) -> Result<()> {
    let mut bytes = Vec::new();
    file.take(MAX_ROW_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
    if bytes.len() as u64 > MAX_ROW_BYTES {
        return Err(too_long(path, 1));
    }
    let data = match String::from_utf8(bytes) {
        Ok(text) => RowData::Values(vec![text]),
        Err(_) => RowData::InvalidUtf8,
    };
    visit(1, data).map(|_| ())
}

fn read_jsonl(
    path: &Path,
    mut reader: impl BufRead,
    fields: &[String],
    visit: &mut Visitor<'_>,
) -> Result<()> {
    let mut line = Vec::new();
    let mut row = 0u64;
    loop {
        line.clear();
        row += 1;
        let n = (&mut reader)
            .take(MAX_ROW_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| DataError::Read {
                path: path.to_path_buf(),
                row: Some(row),
                reason: format!("read failed (truncated or corrupt file?): {e}"),
            })?;
        if n == 0 {
            return Ok(());
        }
        if n as u64 > MAX_ROW_BYTES {
            return Err(too_long(path, row));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let data = match std::str::from_utf8(&line) {
            Err(_) => RowData::InvalidUtf8,
            Ok(text) => RowData::Values(json_fields(path, row, text, fields)?),
        };
        if visit(row, data)?.is_break() {
            return Ok(());
        }
    }
}

fn json_fields(path: &Path, row: u64, text: &str, fields: &[String]) -> Result<Vec<String>> {
    use json_row::{FieldValue, Row};
    let read_err = |reason: String| DataError::Read {
        path: path.to_path_buf(),
        row: Some(row),
        reason,
    };
    let parsed = json_row::parse(text, fields).map_err(|e| {
        read_err(match lone_surrogate(text) {
            Some((escape, column)) => format!(
                "invalid JSON: the escape {escape} at column {column} is a lone UTF-16 surrogate, which is no Unicode character (serde_json: {e})"
            ),
            None => format!("invalid JSON: {e}"),
        })
    })?;
    let Row::Object(values) = parsed else {
        return Err(read_err("expected a JSON object".into()));
    };
    fields
        .iter()
        .zip(values)
        .map(|(field, value)| match value {
            None => Err(DataError::MissingField {
                path: path.to_path_buf(),
                row,
                field: field.clone(),
            }),
            Some(FieldValue::Str(s)) => Ok(s.into_owned()),
            Some(FieldValue::Null) => Ok(String::new()),
            Some(FieldValue::Other(kind)) => Err(DataError::NotAString {
                path: path.to_path_buf(),
                row,
                field: field.clone(),
                found: kind.to_string(),
            }),
        })
        .collect()
}

/// The first `\uD800`…`\uDFFF` escape of `text` not part of a high-low
/// pair, with its 1-based column (SRC-12).
fn lone_surrogate(text: &str) -> Option<(String, usize)> {
    let bytes = text.as_bytes();
    let unit = |at: usize| -> Option<u16> {
        let hex = bytes.get(at + 2..at + 6)?;
        (bytes.get(at..at + 2)? == b"\\u")
            .then(|| u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())?
    };
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        match unit(i) {
            Some(high @ 0xD800..=0xDBFF) => match unit(i + 6) {
                Some(0xDC00..=0xDFFF) => i += 12,
                _ => return Some((format!("\\u{high:04X}"), i + 1)),
            },
            Some(low @ 0xDC00..=0xDFFF) => return Some((format!("\\u{low:04X}"), i + 1)),
            Some(_) => i += 6,
            None => i += 2,
        }
    }
    None
}

fn read_parquet(path: &Path, file: File, fields: &[String], visit: &mut Visitor<'_>) -> Result<()> {
    let corrupt = |row: Option<u64>, e: parquet::errors::ParquetError| DataError::Read {
        path: path.to_path_buf(),
        row,
        reason: format!("corrupt parquet: {e}"),
    };
    let reader =
        no_panic(path, None, || SerializedFileReader::new(file))?.map_err(|e| corrupt(None, e))?;
    let root = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema_ptr();
    let mut projected: Vec<parquet::schema::types::TypePtr> = Vec::new();
    for field in fields {
        let column = root.get_fields().iter().find(|f| f.name() == field);
        let column = column.ok_or_else(|| DataError::MissingField {
            path: path.to_path_buf(),
            row: 1,
            field: field.clone(),
        })?;
        if !projected.iter().any(|p| p.name() == field) {
            projected.push(column.clone());
        }
    }
    let schema = parquet::schema::types::Type::group_type_builder(root.name())
        .with_fields(projected)
        .build()
        .map_err(|e| corrupt(None, e))?;
    let mut rows = no_panic(path, None, || reader.get_row_iter(Some(schema)))?
        .map_err(|e| corrupt(None, e))?;
    for number in 1u64.. {
        let Some(row) = no_panic(path, Some(number), || rows.next())? else {
            break;
        };
        let row = row.map_err(|e| corrupt(Some(number), e))?;
        let data = parquet_fields(path, number, &row, fields)?;
        if visit(number, data)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// Runs one call into the parquet reader, turning a panic into an error
/// naming the file (SRC-8): parquet-rs has panicked on corrupt pages instead
/// of returning an error (apache/arrow-rs #7102, #9705). Only the reader's
/// own calls run under it, never the visitor; the panic message is kept
/// off stderr and put in the error instead.
fn no_panic<T>(path: &Path, row: Option<u64>, f: impl FnOnce() -> T) -> Result<T> {
    quiet_panics::install();
    let _quiet = quiet_panics::Scope::enter();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        DataError::Read {
            path: path.to_path_buf(),
            row,
            reason: format!(
                "corrupt parquet (the parquet reader panicked: {})",
                message.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        }
    })
}

/// A panic hook, installed once and chained to the previous one, that stays
/// silent for panics on a thread inside a [`Scope`], so that a caught reader
/// panic does not print a backtrace notice on top of the one-line error.
mod quiet_panics {
    use std::cell::Cell;
    use std::sync::Once;

    thread_local! {
        static DEPTH: Cell<u32> = const { Cell::new(0) };
    }

    /// Chains the quiet hook in front of the current one (once per process).
    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if DEPTH.with(Cell::get) == 0 {
                    previous(info);
                }
            }));
        });
    }

    /// While alive, panics on this thread are not printed.
    pub struct Scope(());

    impl Scope {
        /// Enters a quiet scope.
        pub fn enter() -> Self {
            DEPTH.with(|d| d.set(d.get() + 1));
            Scope(())
        }
    }

    impl Drop for Scope {
        fn drop(&mut self) {
            DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
}

fn parquet_fields(
    path: &Path,
    row_no: u64,
    row: &parquet::record::Row,
    fields: &[String],
) -> Result<RowData> {
    let mut values = Vec::with_capacity(fields.len());
    for field in fields {
        let value = row
            .get_column_iter()
            .find(|(name, _)| *name == field)
            .map(|(_, v)| v);
        let text = match value {
            None => {
                return Err(DataError::MissingField {
                    path: path.to_path_buf(),
                    row: row_no,
                    field: field.clone(),
                });
            }
            Some(Field::Str(s)) => s.clone(),
            Some(Field::Null) => String::new(),
            Some(Field::Bytes(b)) => match std::str::from_utf8(b.data()) {
                Ok(s) => s.to_string(),
                Err(_) => return Ok(RowData::InvalidUtf8),
            },
            Some(other) => {
                return Err(DataError::NotAString {
                    path: path.to_path_buf(),
                    row: row_no,
                    field: field.clone(),
                    found: format!("a parquet {}", parquet_kind(other)),
                });
            }
        };
        values.push(text);
    }
    Ok(RowData::Values(values))
}

fn parquet_kind(field: &Field) -> String {
    let debug = format!("{field:?}");
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("value")
        .to_string()
}
