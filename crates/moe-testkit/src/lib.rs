//! What the workspace's tests share, in one dev-only crate: the workspace
//! root and a directory's entries, tiny corpora
//! and data configs, a prepared directory of them, the tiny run config of
//! the training, analysis and study tests, and every parameter's gradient
//! by module path. Never a dependency of a library or the binary.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, Tensor};

/// The workspace root (where `Cargo.lock` is), from any crate's tests.
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|p| p.join("Cargo.lock").is_file())
        .unwrap_or(here)
        .to_path_buf()
}

/// User + system CPU seconds of this process so far, from `/proc/self/stat`
/// (Linux; None elsewhere): what the timing examples report beside wall time,
/// since it counts neither other jobs nor a VM's stolen time.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of them, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Names of the entries of `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

/// Writes `rows` (one JSON object each) as a jsonl file.
pub fn write_jsonl(path: &Path, rows: &[serde_json::Value]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// A data config with one local jsonl source per `(domain, file)`, field
/// `text`.
pub fn local_config(
    block_size: usize,
    balance: &str,
    domains: &[(&str, &str)],
    extra_pipeline: &str,
) -> String {
    let mut s = format!(
        "[pipeline]\nblock_size = {block_size}\nseed = 7\nval_fraction = 0.2\nbalance = \"{balance}\"\n{extra_pipeline}\n"
    );
    for (name, file) in domains {
        s += &format!(
            "\n[[domains]]\nname = \"{name}\"\n[[domains.sources]]\nkind = \"local\"\npath = \"{file}\"\nformat = \"jsonl\"\n"
        );
    }
    s
}

/// Prepares `rows` documents per domain, `"{base} #{i}"` each, at block size
/// 16 into `dir/data` (the tiny corpus of the training and analysis tests).
pub fn small_prepared(dir: &Path, domains: &[(&str, &str)], rows: usize, val: f64) -> PathBuf {
    small_prepared_at(dir, domains, rows, val, 16)
}

/// [`small_prepared`] at another block size.
pub fn small_prepared_at(
    dir: &Path,
    domains: &[(&str, &str)],
    rows: usize,
    val: f64,
    block_size: usize,
) -> PathBuf {
    let files: Vec<(&str, String)> = domains
        .iter()
        .map(|(name, base)| {
            let docs: Vec<serde_json::Value> = (0..rows)
                .map(|i| serde_json::json!({ "text": format!("{base} #{i}") }))
                .collect();
            let file = format!("{name}.jsonl");
            write_jsonl(&dir.join(&file), &docs);
            (*name, file)
        })
        .collect();
    let listed: Vec<(&str, &str)> = files.iter().map(|(n, f)| (*n, f.as_str())).collect();
    let config = local_config(block_size, "tokens", &listed, "")
        .replace("val_fraction = 0.2", &format!("val_fraction = {val}"))
        .replace("seed = 7\n", "");
    let path = dir.join("data.toml");
    std::fs::write(&path, config).unwrap();
    let out = dir.join("data");
    let data_config = moe_data::config::DataConfig::load(&path).unwrap();
    let opts = moe_data::prepare::PrepareOptions {
        out: out.clone(),
        ..Default::default()
    };
    moe_data::prepare::prepare(&data_config, &path, &opts).unwrap();
    out
}

/// A small uncompressed parquet file: one UTF8 column `text`, six rows.
pub fn small_parquet() -> Vec<u8> {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = parquet::schema::parser::parse_message_type(
        "message schema { REQUIRED BYTE_ARRAY text (UTF8); }",
    )
    .unwrap();
    let props = std::sync::Arc::new(
        WriterProperties::builder()
            .set_compression(parquet::basic::Compression::UNCOMPRESSED)
            .build(),
    );
    let mut bytes = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut bytes, std::sync::Arc::new(schema), props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut col = group.next_column().unwrap().unwrap();
    let values: Vec<ByteArray> = (0..6)
        .map(|i| ByteArray::from(format!("doc {}", i % 3).as_str()))
        .collect();
    col.typed::<ByteArrayType>()
        .write_batch(&values, None, None)
        .unwrap();
    col.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
    bytes
}

/// A tiny run config (width 16, 2 blocks; MoE block 1 of 4 experts when
/// `moe`), 4 steps with eval and checkpoints every 2: the runs of the
/// analysis and study tests.
pub fn tiny_run_toml(name: &str, moe: bool) -> String {
    let moe_section = if moe {
        "[model.moe]\nlayers = [1]\nn_experts = 4\ntop_k = 1\n"
    } else {
        ""
    };
    let router = if moe {
        "lb_coef = 0.01\nz_coef = 0.001\n"
    } else {
        ""
    };
    format!(
        "[run]\nname = \"{name}\"\nseed = 3\n[model]\ninit = \"scratch\"\npreset = \"tiny\"\nupcycle_noise = 0.01\n[model.dims]\nd_model = 16\nn_layer = 2\nn_head = 2\nn_positions = 32\n{moe_section}[train]\nsteps = 4\nmicro_batch = 4\nlr = 3e-3\n{router}\n[eval]\nevery = 2\nmax_blocks = 4\n[log]\nevery = 1\n[checkpoint]\nevery = 2\nkeep = 2\n"
    )
}

/// One float parameter's gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGrad {
    /// Module path, e.g. `h.1.mlp.router.linear`.
    pub path: String,
    /// The gradient's dtype and values (flattened), `None` when the
    /// parameter got none.
    pub grad: Option<(DType, Vec<f32>)>,
}

impl ParamGrad {
    /// The values, empty when there is no gradient.
    pub fn values(&self) -> &[f32] {
        self.grad.as_ref().map_or(&[], |(_, v)| v.as_slice())
    }
}

/// Every float parameter's gradient in `grads`, in `model`'s visit order.
pub fn param_grads<B: AutodiffBackend, M: Module<B>>(
    model: &M,
    grads: &GradientsParams,
) -> Vec<ParamGrad> {
    let mut visitor = GradVisitor::<B> {
        grads,
        path: Vec::new(),
        out: Vec::new(),
        _backend: std::marker::PhantomData,
    };
    model.visit(&mut visitor);
    visitor.out
}

struct GradVisitor<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    path: Vec<String>,
    out: Vec<ParamGrad>,
    _backend: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradVisitor<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let grad = self.grads.get::<B::InnerBackend, D>(param.id).map(|g| {
            let dtype = g.dtype();
            (dtype, g.into_data().convert::<f32>().to_vec().unwrap())
        });
        self.out.push(ParamGrad {
            path: self.path.join("."),
            grad,
        });
    }
}

/// `max|a − b| / max|b|` (absolute when `b` is all zeros): the relative
/// error of a tensor against its reference in the parity tests.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let diff = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|&y| (y as f64).abs()).fold(0.0, f64::max);
    if scale > 0.0 { diff / scale } else { diff }
}
