//! ATLAS-1 … ATLAS-7: the routing atlas of tiny runs (an MoE run with two
//! MoE blocks over two seeds, its no-LB twin and a dense run) on three small
//! domains, one of them holding a planted `</script><img onerror>`
//! document; opened in headless Chromium when one is installed (and
//! required when `MOE_REQUIRE_BROWSER=1`, as `.ci/run` sets), and the
//! committed demo atlas. `MOE_ATLAS_KEEP=<file>` copies each page the
//! browser opened there, to look at by hand.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use moe_analysis::atlas::escape::html;
use moe_analysis::atlas::{AtlasOptions, atlas, excerpts, headline};
use moe_analysis::{AnalyzeOptions, analyze, report};
use moe_data::prepared::PreparedData;
use moe_data::split::Split;
use moe_train::{Blocks, RunConfig, RunDir, TrainOptions, train};

// mimalloc that keeps freed memory (crates/moe-alloc).
#[global_allocator]
static GLOBAL: moe_alloc::Allocator = moe_alloc::Allocator;

/// A planted document: it must show as text (ATLAS-4).
const PLANTED: &str =
    "</script><img src=x onerror=\"document.title='pwned'\"> The keeper wrote home.";

fn small_data(dir: &Path) -> PathBuf {
    moe_testkit::small_prepared_at(
        dir,
        &[
            ("code", "def f(x):\n    # add one\n    return x + 1\n"),
            ("math", "Problem: 3 + 4 = ?\n\nSolution: 7"),
            ("prose", PLANTED),
        ],
        60,
        0.2,
        64,
    )
}

/// A tiny run with MoE blocks 0 and 1 (4 experts), or dense.
fn train_run(dir: &Path, data: &Path, name: &str, seed: u64, kind: &str) -> PathBuf {
    let text = moe_testkit::tiny_run_toml(name, kind != "dense")
        .replace("layers = [1]", "layers = [0, 1]")
        .replace("n_positions = 32", "n_positions = 64")
        .replace("seed = 3", &format!("seed = {seed}"))
        // The no-LB twin also drops the z-loss, so the report warns that the
        // contrast is not load balancing alone (ANA-20).
        .replace(
            "lb_coef = 0.01\nz_coef = 0.001",
            if kind == "no-lb" {
                "lb_coef = 0.0\nz_coef = 0.0"
            } else {
                "lb_coef = 0.01\nz_coef = 0.001"
            },
        );
    let config = RunConfig::parse(&text, Path::new("t.toml")).unwrap();
    let out = dir.join(format!("{name}-{seed}"));
    let opts = TrainOptions {
        data: data.to_path_buf(),
        out: out.clone(),
        progress: false,
        device_name: "cpu".into(),
        device_memory: None,
        ..Default::default()
    };
    train::<moe_model::CpuAutodiff>(&config, &opts, &Default::default()).unwrap();
    if kind != "dense" {
        let options = AnalyzeOptions {
            permutations: 50,
            random_router_draws: 10,
            control_draws: 2,
            ..AnalyzeOptions::default()
        };
        let run = RunDir::new(&out);
        let data = PreparedData::open(data).unwrap();
        analyze(&run, &data, &run.analysis_dir(), &options).unwrap();
    }
    out
}

struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    runs: Vec<PathBuf>,
    out: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let runs = vec![
        train_run(tmp.path(), &data, "dense", 3, "dense"),
        train_run(tmp.path(), &data, "moe", 3, "moe"),
        train_run(tmp.path(), &data, "moe", 4, "moe"),
        train_run(tmp.path(), &data, "moe-no-lb", 3, "no-lb"),
    ];
    let out = tmp.path().join("report/atlas.html");
    Fixture {
        data,
        runs,
        out,
        _tmp: tmp,
    }
}

// Checks: ATLAS-1, ATLAS-2, ATLAS-3, ATLAS-4, ATLAS-6
#[test]
fn atlas_1_one_offline_page_of_tiny_runs() {
    let f = fixture();
    let options = AtlasOptions::default();
    let summary = atlas(&f.runs, &f.data, &f.out, &options).unwrap();
    let page = std::fs::read_to_string(&f.out).unwrap();
    assert_eq!(summary.bytes, page.len() as u64);
    assert!(!f.out.with_extension("html.tmp").exists());
    // ATLAS-1: nothing is loaded from anywhere.
    for needle in [" src=", "<link", "url(", "@import", "http://", "https://"] {
        assert!(!page.contains(needle), "the page contains {needle:?}");
    }
    // ATLAS-6: one span per shown token of each MoE run (3 of them).
    let spans = page.matches("<span class=\"t ").count();
    assert_eq!(spans, summary.token_spans);
    let val = Blocks::load(&PreparedData::open(&f.data).unwrap(), Split::Val, 0).unwrap();
    let chosen = excerpts::choose(&val, options.excerpts_per_domain, options.seed);
    assert!(!chosen.is_empty());
    assert_eq!(spans, 3 * chosen.len() * 63);
    // ATLAS-4: the planted document is escaped everywhere.
    assert!(!page.contains("<img"));
    assert_eq!(
        page.matches("</script>").count(),
        3,
        "only the page's own scripts end"
    );
    // ATLAS-3: the overview's sentences are the report's, unchanged.
    let report = report(&f.runs, &f.out.parent().unwrap().join("md")).unwrap();
    let runs = atlas_runs(&f);
    let sentences = headline::sentences(&runs);
    assert!(sentences.iter().any(|s| s.contains("over 2 seeds")));
    assert!(
        sentences.iter().any(|s| s.starts_with("The contrast of ")),
        "{sentences:?}"
    );
    // The causal figures across seeds (ANA-31) stay in the report.
    assert!(report.markdown.contains("## Causal figures across seeds"));
    assert!(
        !sentences
            .iter()
            .any(|s| s.contains("keep-1") || s.contains("top expert")),
        "{sentences:?}"
    );
    for s in &sentences {
        assert!(
            report.markdown.contains(&format!("- {s}")),
            "not in the report: {s}"
        );
        assert!(page.contains(&html(s)), "not on the page: {s}");
    }
    assert_eq!(page.matches("<table class=\"heat\">").count(), 3 * 2);
    // `moe atlas` writes the same page and prints its path.
    let cli_out = f.out.with_file_name("cli.html");
    let mut args: Vec<String> = vec!["atlas".into()];
    args.extend(f.runs.iter().map(|r| r.display().to_string()));
    args.extend(["--data".into(), f.data.display().to_string()]);
    args.extend(["--out".into(), cli_out.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = common::moe(f.out.parent().unwrap(), &args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(stdout.trim_end(), format!("atlas: {}", cli_out.display()));
    assert!(std::fs::read_to_string(&cli_out).unwrap() == page);
    browser_self_test(&f.out, spans, true);
}

/// The runs as the atlas sees them, without their excerpts.
fn atlas_runs(f: &Fixture) -> Vec<moe_analysis::atlas::AtlasRun> {
    moe_analysis::report::load_runs(&f.runs, f.out.parent().unwrap())
        .unwrap()
        .into_iter()
        .map(|run| moe_analysis::atlas::AtlasRun { run, routed: None })
        .collect()
}

// Checks: ATLAS-2
#[test]
fn atlas_2_excerpt_routing_is_the_analysis_routing() {
    let f = fixture();
    let data = PreparedData::open(&f.data).unwrap();
    let run = RunDir::new(&f.runs[1]);
    let analysis =
        moe_analysis::analyze::read_json(&run.analysis_dir().join("analysis.json")).unwrap();
    let (val, vocab) = run.val_blocks(&data, 0).unwrap();
    let chosen = excerpts::choose(&val, 2, 9);
    assert_eq!(chosen, excerpts::choose(&val, 2, 9), "seeded");
    let routed = excerpts::route(&run, &analysis, &data, &chosen, 20).unwrap();
    assert_eq!(routed.shown, 20);
    // The whole val set, routed as `moe analyze` routes it.
    let (dir, _) = run.trained_model(4).unwrap();
    let (_, model) =
        moe_model::load_model_dir::<moe_model::CpuBackend>(&dir, &Default::default()).unwrap();
    let full =
        moe_analysis::route_val::collect(&model, &val, 8, vocab.as_ref(), &Default::default())
            .unwrap();
    let seq = val.block_size - 1;
    for (k, c) in chosen.iter().enumerate() {
        let blocks_before: usize = (0..c.domain).map(|d| val.n_blocks(d)).sum();
        let start = (blocks_before + c.block) * seq;
        for (i, row) in routed.rows(k).enumerate() {
            assert_eq!(routed.table.token[row], full.token[start + i]);
            for (a, b) in routed.table.layers.iter().zip(&full.layers) {
                assert_eq!(a.expert[row], b.expert[start + i]);
                assert!((a.gate[row] - b.gate[start + i]).abs() < 1e-5);
                assert!((a.entropy[row] - b.entropy[start + i]).abs() < 1e-5);
            }
        }
    }
    // A stale analysis (another step) is refused, naming analysis.json.
    let mut stale = analysis.clone();
    stale.run.checkpoint_step = Some(2);
    let err = excerpts::route(&run, &stale, &data, &chosen, 20).unwrap_err();
    assert!(err.to_string().contains("analysis.json"), "{err}");
}

// Checks: ATLAS-1
#[test]
fn atlas_1_bad_run_dir_names_it_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let bogus = tmp.path().join("not-a-run");
    std::fs::create_dir_all(&bogus).unwrap();
    let out = tmp.path().join("atlas.html");
    let err = atlas(
        std::slice::from_ref(&bogus),
        &data,
        &out,
        &AtlasOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not-a-run"), "{err}");
    assert!(!out.exists() && !tmp.path().join("atlas.html.tmp").exists());
    let args = [
        "atlas",
        bogus.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let run = common::moe(tmp.path(), &args);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("not-a-run"));
    assert!(!out.exists());
}

// Checks: ATLAS-6, ATLAS-7
#[test]
fn atlas_7_committed_demo_atlas_is_small_and_works() {
    let path = common::repo_root().join("docs/examples/demo/report/atlas.html");
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert!(bytes < 5_000_000, "{}: {bytes} bytes", path.display());
    let page = std::fs::read_to_string(&path).unwrap();
    let spans = page.matches("<span class=\"t ").count();
    assert!(spans > 0);
    browser_self_test(&path, spans, false);
}

/// A Chromium (or Chrome) on PATH, if any.
fn browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Opens `page#selftest` headless and checks what the page recorded
/// (ATLAS-6): `spans` token spans, recoloured by another layer, no script
/// error, and — for the tiny runs — the planted document shown as text.
fn browser_self_test(page: &Path, spans: usize, planted: bool) {
    let Some(chromium) = browser() else {
        assert!(
            std::env::var("MOE_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "MOE_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)"
        );
        eprintln!(
            "SKIPPED the browser half of this test: no chromium on PATH (apt-get install chromium)"
        );
        return;
    };
    let url = format!("file://{}#selftest", page.canonicalize().unwrap().display());
    // Headless Chromium now and then crashes on start on a loaded machine:
    // one more try with a fresh profile (what the page records is checked
    // below either way).
    let dump = || {
        let profile = tempfile::tempdir().unwrap();
        Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--dump-dom", &url])
            .output()
            .unwrap()
    };
    let first = dump();
    let out = if first.status.success() {
        first
    } else {
        dump()
    };
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("<pre id=\"atlas-errors\"></pre>"),
        "script errors recorded"
    );
    assert!(!dom.contains("<title>pwned"));
    let start = dom
        .find("<pre id=\"selftest\" hidden=\"\">")
        .expect("no self-test element");
    let rest = &dom[start..];
    let text = &rest[rest.find('>').unwrap() + 1..rest.find("</pre>").unwrap()];
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let result: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    eprintln!("{}: {result}", page.display());
    if let Some(keep) = std::env::var_os("MOE_ATLAS_KEEP") {
        std::fs::copy(page, keep).unwrap();
    }
    assert_eq!(result["errors"], serde_json::json!([]), "{result}");
    assert_eq!(result["spans"], spans, "{result}");
    assert_eq!(result["images"], 0, "{result}");
    assert!(result["layers"].as_u64().unwrap() >= 2, "{result}");
    assert!(
        result["changed"].as_u64().unwrap() > 0,
        "another layer changed no colour: {result}"
    );
    let tip = result["tip"].as_str().unwrap_or_default();
    assert!(
        tip.contains("token id") && tip.contains("expert") && tip.contains("entropy"),
        "{result}"
    );
    if planted {
        assert_eq!(result["planted_script_as_text"], true, "{result}");
        assert_eq!(result["planted_img_as_text"], true, "{result}");
    }
}
