//! Row readers for the source file formats (text, jsonl, jsonl.gz, parquet).
//!
//! Each reader streams one file and hands every row's requested fields to a
//! visitor, which may stop the read early. Malformed input is an error that
//! names the file and the row (SRC-3); a non-UTF-8 row is reported to the
//! visitor so the configured policy can skip or fail it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;

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

/// Streams the rows of `path`, extracting `fields` from each.
pub fn for_each_row(
    path: &Path,
    format: FileFormat,
    fields: &[String],
    visit: &mut Visitor<'_>,
) -> Result<()> {
    let open = || File::open(path).map_err(|e| DataError::io(path, e));
    match format {
        FileFormat::Text => read_text(path, open()?, visit),
        FileFormat::Jsonl => read_jsonl(
            path,
            BufReader::with_capacity(1 << 20, open()?),
            fields,
            visit,
        ),
        FileFormat::JsonlGz => {
            let gz = flate2::read::MultiGzDecoder::new(BufReader::new(open()?));
            read_jsonl(path, BufReader::with_capacity(1 << 20, gz), fields, visit)
        }
        FileFormat::Parquet => read_parquet(path, open()?, fields, visit),
    }
}

fn read_text(path: &Path, mut file: File, visit: &mut Visitor<'_>) -> Result<()> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
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
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| DataError::Read {
                path: path.to_path_buf(),
                row: Some(row),
                reason: format!("read failed (truncated or corrupt file?): {e}"),
            })?;
        if n == 0 {
            return Ok(());
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
    let read_err = |reason: String| DataError::Read {
        path: path.to_path_buf(),
        row: Some(row),
        reason,
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| read_err(format!("invalid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(read_err("expected a JSON object".into()));
    };
    fields
        .iter()
        .map(|field| match map.get(field) {
            None => Err(DataError::MissingField {
                path: path.to_path_buf(),
                row,
                field: field.clone(),
            }),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) => Ok(String::new()),
            Some(other) => Err(DataError::NotAString {
                path: path.to_path_buf(),
                row,
                field: field.clone(),
                found: json_kind(other).to_string(),
            }),
        })
        .collect()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn read_parquet(path: &Path, file: File, fields: &[String], visit: &mut Visitor<'_>) -> Result<()> {
    let corrupt = |row: Option<u64>, e: parquet::errors::ParquetError| DataError::Read {
        path: path.to_path_buf(),
        row,
        reason: format!("corrupt parquet: {e}"),
    };
    let reader = SerializedFileReader::new(file).map_err(|e| corrupt(None, e))?;
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
    let rows = reader
        .get_row_iter(Some(schema))
        .map_err(|e| corrupt(None, e))?;
    for (i, row) in rows.enumerate() {
        let number = i as u64 + 1;
        let row = row.map_err(|e| corrupt(Some(number), e))?;
        let data = parquet_fields(path, number, &row, fields)?;
        if visit(number, data)?.is_break() {
            break;
        }
    }
    Ok(())
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
