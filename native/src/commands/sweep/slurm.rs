//! `nml sweep slurm`: the study as a Slurm job array, one array task per shard, and a report
//! job that runs once every task has ended (`afterany`, so a report names what a failed task
//! left missing). Slurm schedules, retries and logs; nml only writes the scripts.

use std::path::{Path, PathBuf};
use std::process::Command;

use nml_core::io::write_atomic;
use nml_core::{NmlError, Result};

use super::StudyArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    study: StudyArgs,
    /// The study's output folder, on a filesystem every node sees; the scripts and the jobs'
    /// logs go to its slurm/ folder.
    #[arg(long, default_value = "nml-sweep")]
    out: PathBuf,
    /// Array tasks, each a shard of the study (default: one per pre-training run).
    #[arg(long)]
    shards: Option<usize>,
    /// The partition (queue) both jobs go to (default: the cluster's).
    #[arg(long)]
    partition: Option<String>,
    /// GPUs for each array task.
    #[arg(long)]
    gpus_per_task: Option<u32>,
    /// CPU cores for each array task.
    #[arg(long)]
    cpus_per_task: Option<u32>,
    /// Time limit of each array task, in Slurm's format (e.g. 4:00:00).
    #[arg(long)]
    time: Option<String>,
    /// Submit both jobs with sbatch and print their ids.
    #[arg(long)]
    submit: bool,
}

/// Everything the scripts say, resolved to absolute paths.
struct Plan {
    nml: PathBuf,
    workdir: PathBuf,
    out: PathBuf,
    study: Vec<String>,
    backend: Vec<String>,
    shards: usize,
    partition: Option<String>,
    gpus_per_task: Option<u32>,
    cpus_per_task: Option<u32>,
    time: Option<String>,
}

/// `text` quoted for a POSIX shell.
fn quoted(text: &str) -> String {
    if !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=,:+@".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn command_line(words: &[String]) -> String {
    words.iter().map(|w| quoted(w)).collect::<Vec<_>>().join(" ")
}

impl Plan {
    fn sbatch_header(&self, name: &str, log: &str) -> String {
        let mut lines = vec![
            "#!/usr/bin/env bash".to_string(),
            format!("#SBATCH --job-name={name}"),
            format!("#SBATCH --output={}/slurm/{log}", self.out.display()),
            format!("#SBATCH --chdir={}", self.workdir.display()),
        ];
        if let Some(p) = &self.partition {
            lines.push(format!("#SBATCH --partition={p}"));
        }
        lines.join("\n") + "\n"
    }

    /// `shards.sbatch`: one array task per shard.
    fn shards_script(&self) -> String {
        let mut text = self.sbatch_header("nml-sweep", "shard-%A_%a.log");
        text += &format!("#SBATCH --array=0-{}\n", self.shards - 1);
        if let Some(g) = self.gpus_per_task {
            text += &format!("#SBATCH --gpus-per-task={g}\n");
        }
        if let Some(c) = self.cpus_per_task {
            text += &format!("#SBATCH --cpus-per-task={c}\n");
        }
        if let Some(t) = &self.time {
            text += &format!("#SBATCH --time={t}\n");
        }
        let mut words = vec![self.nml.display().to_string(), "sweep".to_string()];
        words.extend(self.study.iter().chain(&self.backend).cloned());
        words.extend(["--out".to_string(), self.out.display().to_string()]);
        text += &format!(
            "# Shard K of {n} runs every {n}-th pre-training run of the study with its cells; cells\n\
             # already in the output folder are reused, so a resubmission redoes only what is missing.\n\
             set -euo pipefail\n\
             exec {} --shard \"$SLURM_ARRAY_TASK_ID/{n}\"\n",
            command_line(&words),
            n = self.shards,
        );
        text
    }

    /// `report.sbatch`: the report, from whatever cells the shards finished.
    fn report_script(&self) -> String {
        let mut text = self.sbatch_header("nml-sweep-report", "report-%j.log");
        // Spectra are measured again from the features, on the study's backend.
        let backend = match self.backend.first().map(String::as_str) {
            Some("--backend") => self.backend.clone(),
            _ => vec![],
        };
        let mut words = vec![self.nml.display().to_string(), "sweep".into(), "report".into()];
        words.extend(backend);
        words.extend(["--out".into(), self.out.display().to_string()]);
        text += &format!("set -euo pipefail\nexec {}\n", command_line(&words));
        text
    }

    /// `submit.sh`: the array, then the report once every array task has ended.
    fn submit_script(&self) -> String {
        let dir = self.out.join("slurm");
        format!(
            "#!/usr/bin/env bash\n\
             # Submits the study's {n} shards as one job array, then its report once every shard has\n\
             # ended (afterany: a report also after a failure, naming the missing cells).\n\
             set -euo pipefail\n\
             dir={dir}\n\
             shards=$(sbatch --parsable \"$dir/shards.sbatch\")\n\
             shards=${{shards%%;*}}\n\
             report=$(sbatch --parsable --dependency=afterany:\"$shards\" \"$dir/report.sbatch\")\n\
             report=${{report%%;*}}\n\
             echo \"shards: job $shards (array 0-{last}, logs $dir/shard-${{shards}}_K.log)\"\n\
             echo \"report: job $report (after the shards; log $dir/report-$report.log)\"\n",
            n = self.shards,
            last = self.shards - 1,
            dir = quoted(&dir.display().to_string()),
        )
    }
}

/// `path` made absolute against the working directory.
fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| NmlError::io(Path::new("."), e))?;
    Ok(cwd.join(path))
}

pub fn run(args: Args) -> Result<()> {
    let study = args.study.study()?;
    let runs = study.suite.runs().len();
    let shards = args.shards.unwrap_or(runs);
    if shards == 0 || shards > runs {
        return Err(NmlError::Invalid(format!(
            "--shards {shards}: the study has {runs} pre-training runs, so 1 to {runs} shards"
        )));
    }
    let out = absolute(&args.out)?;
    // sbatch reads `#SBATCH` lines word by word and `%` starts a file-name pattern there.
    let shown = out.display().to_string();
    if shown.contains(|c: char| c.is_whitespace() || c == '%') {
        return Err(NmlError::Invalid(format!(
            "--out {shown}: Slurm's #SBATCH lines cannot hold a path with spaces or %"
        )));
    }
    let mut study_words = match &args.study.suite {
        Some(path) => vec!["--suite".to_string(), absolute(path)?.display().to_string()],
        None => vec!["--preset".to_string(), args.study.preset.clone()],
    };
    if let Some(n) = args.study.seeds {
        study_words.extend(["--seeds".to_string(), n.to_string()]);
    }
    if let Some(heads) = &args.study.heads {
        let names: Vec<&str> = heads.iter().map(|h| h.name()).collect();
        study_words.push(format!("--heads={}", names.join(",")));
    }
    if let Some(methods) = &args.study.finetune {
        let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
        study_words.push(if names.is_empty() {
            "--finetune".to_string()
        } else {
            format!("--finetune={}", names.join(","))
        });
    }
    if !args.study.wise_alpha.is_empty() {
        let alphas: Vec<String> = args.study.wise_alpha.iter().map(f64::to_string).collect();
        study_words.push(format!("--wise-alpha={}", alphas.join(",")));
    }
    let backend = match &args.study.devices.devices {
        Some(list) => vec!["--devices".to_string(), list.clone()],
        None => vec!["--backend".to_string(), args.study.devices.backend.backend.to_string()],
    };
    let plan = Plan {
        nml: std::env::current_exe().map_err(|e| NmlError::io(Path::new("nml"), e))?,
        workdir: absolute(Path::new("."))?,
        out,
        study: study_words,
        backend,
        shards,
        partition: args.partition,
        gpus_per_task: args.gpus_per_task,
        cpus_per_task: args.cpus_per_task,
        time: args.time,
    };
    let dir = plan.out.join("slurm");
    // The report job reads the study from the folder, so it is there before any job starts.
    study.write(&plan.out)?;
    write_atomic(&dir.join("shards.sbatch"), plan.shards_script().as_bytes())?;
    write_atomic(&dir.join("report.sbatch"), plan.report_script().as_bytes())?;
    let submit = dir.join("submit.sh");
    write_atomic(&submit, plan.submit_script().as_bytes())?;
    eprintln!(
        "wrote {} ({shards} array tasks of {runs} pre-training runs), report.sbatch and submit.sh",
        dir.join("shards.sbatch").display()
    );
    if !args.submit {
        eprintln!("submit with `bash {}` (or add --submit)", submit.display());
        return Ok(());
    }
    let status = Command::new("bash")
        .arg(&submit)
        .status()
        .map_err(|e| NmlError::io(Path::new("bash"), e))?;
    if !status.success() {
        return Err(NmlError::Invalid(format!(
            "{} failed ({status}): is sbatch on this machine's PATH, and the cluster up?",
            submit.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            nml: "/opt/nml/bin/nml".into(),
            workdir: "/home/me/nml".into(),
            out: "/shared/study".into(),
            study: vec!["--suite".into(), "/home/me/my suite.toml".into(), "--finetune".into()],
            backend: vec!["--backend".into(), "auto".into()],
            shards: 3,
            partition: Some("gpu".into()),
            gpus_per_task: Some(1),
            cpus_per_task: None,
            time: Some("4:00:00".into()),
        }
    }

    #[test]
    fn the_array_has_a_task_per_shard_and_the_report_waits_for_it() {
        let plan = plan();
        let shards = plan.shards_script();
        for line in [
            "#SBATCH --array=0-2",
            "#SBATCH --partition=gpu",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --time=4:00:00",
            "#SBATCH --output=/shared/study/slurm/shard-%A_%a.log",
            "#SBATCH --chdir=/home/me/nml",
            "exec /opt/nml/bin/nml sweep --suite '/home/me/my suite.toml' --finetune --backend auto --out /shared/study --shard \"$SLURM_ARRAY_TASK_ID/3\"",
        ] {
            assert!(shards.lines().any(|l| l == line), "{line} not in\n{shards}");
        }
        assert!(!shards.contains("cpus-per-task"));
        let report = plan.report_script();
        assert!(
            report.contains(
                "exec /opt/nml/bin/nml sweep report --backend auto --out /shared/study\n"
            )
        );
        assert!(report.contains("#SBATCH --output=/shared/study/slurm/report-%j.log"));
        let submit = plan.submit_script();
        assert!(submit.contains("--dependency=afterany:\"$shards\""), "{submit}");
    }

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(quoted("/a/b-c_1.toml"), "/a/b-c_1.toml");
        assert_eq!(quoted("it's here"), r"'it'\''s here'");
        assert_eq!(quoted(""), "''");
        assert_eq!(quoted("$HOME"), "'$HOME'");
    }
}
