//! A study spread over machines: `moe reproduce --list` prints it as
//! independent shell commands in four stages (data; one `moe train` per
//! run and seed; the analyses; the report), so any scheduler (a Slurm job
//! array, GNU parallel, a shell loop) can run a stage's commands in any
//! order on machines that share a file system; `--only RUN@SEED` trains
//! one run of the study as the study itself would.

use std::fmt::Write;

use anyhow::{Context, Result};
use moe_data::config::DataConfig;
use moe_data::prepared::PreparedData;

use crate::runs::{RunPlan, ensure_run};
use crate::study::{StudyOptions, plan};

/// `RUN@SEED`: the run's config name and its seed.
pub fn plan_id(plan: &RunPlan) -> Result<String> {
    let stem = plan
        .config
        .file_stem()
        .with_context(|| format!("{}: no file name", plan.config.display()))?
        .to_string_lossy()
        .into_owned();
    Ok(format!("{stem}@{}", plan.config()?.run.seed))
}

/// The study as shell commands, stage by stage (CLI-6).
pub fn study_commands(opts: &StudyOptions) -> Result<String> {
    let plans = plan(opts)?;
    let data = opts.out.join("data");
    let data_arg = quote(&data.display().to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# The study as independent commands. Run the stages in order; the commands of a\n\
         # stage are independent: any order, any number at once, on any machine that\n\
         # shares this file system. `moe reproduce … --only RUN@SEED` trains one run too."
    );
    let _ = writeln!(out, "# 1. data");
    let mut prepare = format!(
        "moe data prepare --config {} --out {data_arg} --force",
        quote(&opts.data_config.display().to_string())
    );
    if opts.hub.offline {
        prepare += " --offline";
    }
    if opts.hub.locked {
        prepare += " --locked";
    }
    let _ = writeln!(out, "{prepare}");
    let _ = writeln!(out, "# 2. train: one run per command");
    for (i, p) in plans.iter().enumerate() {
        let device = opts.devices[i % opts.devices.len().max(1)];
        let mut line = format!(
            "moe train --config {} --data {data_arg} --out {} --device {device}",
            quote(&p.config.display().to_string()),
            quote(&p.out.display().to_string()),
        );
        if let Some(seed) = p.seed {
            let _ = write!(line, " --seed {seed}");
        }
        if let Some(steps) = p.max_steps {
            let _ = write!(line, " --max-steps {steps}");
        }
        let _ = writeln!(out, "{line}    # {}", plan_id(p)?);
    }
    let _ = writeln!(out, "# 3. analyse: the MoE runs, after stage 2");
    for p in &plans {
        if p.config()?.model.moe.is_some() {
            let _ = writeln!(
                out,
                "moe analyze --run {} --data {data_arg} --permutations {}",
                quote(&p.out.display().to_string()),
                opts.permutations
            );
        }
    }
    let _ = writeln!(out, "# 4. report, after stage 3");
    let runs: Vec<String> = plans
        .iter()
        .map(|p| quote(&p.out.display().to_string()))
        .collect();
    let _ = writeln!(
        out,
        "moe report {} --out {}",
        runs.join(" "),
        quote(&opts.out.join("report").display().to_string())
    );
    Ok(out)
}

/// Trains the run `id` (`RUN@SEED`) of the study on its first device, as
/// the whole study would (resuming it, or moving aside a run on other data).
pub fn run_one(opts: &StudyOptions, id: &str) -> Result<()> {
    let plans = plan(opts)?;
    let mut ids = Vec::new();
    for p in &plans {
        ids.push(plan_id(p)?);
    }
    let Some(i) = ids.iter().position(|x| x == id) else {
        anyhow::bail!(
            "--only {id}: not a run of this study (its runs: {})",
            ids.join(", ")
        );
    };
    let data_dir = opts.out.join("data");
    let config = DataConfig::load(&opts.data_config)
        .with_context(|| format!("the data config {}", opts.data_config.display()))?;
    let data = PreparedData::open(&data_dir)
        .ok()
        .filter(|d| d.matches_inputs(&config, &opts.data_config).unwrap_or(false))
        .with_context(|| {
            format!(
                "--only {id}: {} does not hold the study's prepared data (run stage 1 of --list first)",
                data_dir.display()
            )
        })?;
    let device = *opts.devices.first().context("no device to train on")?;
    match ensure_run(&plans[i], &data, device, opts.progress)? {
        None => eprintln!(
            "{id}: reusing the finished run in {}",
            plans[i].out.display()
        ),
        Some(s) => eprintln!("{id}: {} steps in {}", s.steps, plans[i].out.display()),
    }
    Ok(())
}

/// `text` as one shell word: as it is when it holds only safe characters,
/// else in single quotes.
fn quote(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:@=+,".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks: CLI-6 — a path with spaces or quotes is one shell word.
    #[test]
    fn cli_6_paths_are_quoted_as_one_shell_word() {
        assert_eq!(quote("runs/moe/seed-42"), "runs/moe/seed-42");
        assert_eq!(quote("my runs/a"), "'my runs/a'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
