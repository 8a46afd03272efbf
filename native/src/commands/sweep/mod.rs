//! `nml sweep`: the paper's study in one command (core's `study` does the work): for every
//! noise ratio and seed, pre-train (or reuse the finished checkpoint), extract features for every
//! task, measure SVE and LSVR, tune LP / MLP / NMTune heads at every data fraction, with
//! `--finetune` also tune the encoder itself; then write results.json, results.csv, summary.md
//! and the plots. Every finished step is kept on disk and not redone when the sweep runs again.

mod figures;
mod presets;
mod report;
mod slurm;

pub use presets::load_suite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nml_core::Result;
use nml_core::finetune::FinetuneMethod;
use nml_core::study::{
    Shard, StudyEvent, StudyFile, StudyHead, StudyMode, StudyObserver, StudyOptions, cell_count,
};

use crate::args::{BackendArg, DevicesArg, describe};
use crate::progress::StepBar;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<SweepCommand>,
    #[command(flatten)]
    study: StudyArgs,
    /// Output folder: runs/, features/, tuned/, results.json, results.csv, summary.md, plots.
    #[arg(long, default_value = "nml-sweep")]
    out: PathBuf,
    /// Run only shard K of N (K from 0): every N-th pre-training run with its features and
    /// cells, into the shared --out; `nml sweep report` then builds the report.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
}

#[derive(clap::Subcommand)]
enum SweepCommand {
    /// Build results.json, results.csv, summary.md and the plots from whatever cells --out
    /// holds (its shards' work), naming the missing ones.
    Report(ReportArgs),
    /// Write a Slurm job array (one task per shard) and a report job after it; --submit sends
    /// both to the cluster.
    Slurm(Box<slurm::Args>),
}

#[derive(clap::Args)]
struct ReportArgs {
    /// The study's output folder (it holds study.json).
    #[arg(long, default_value = "nml-sweep")]
    out: PathBuf,
    #[command(flatten)]
    backend: BackendArg,
}

/// What study to run: a suite and what is laid over it.
#[derive(clap::Args, Clone)]
struct StudyArgs {
    /// Built-in suite: quick (starter digits, minutes on a 2-core CPU), vit (the same with a small
    /// ViT, for --finetune lora), full (Fashion-MNIST, for a GPU), gpu (torchvision's
    /// ResNet-18 on CIFAR-100, for a desktop GPU) or text (all-MiniLM-L6-v2 on BBC News, after
    /// scripts/fetch-data).
    #[arg(long, default_value = "quick", conflicts_with = "suite")]
    preset: String,
    /// A suite file (TOML) of your own; see native/suites/quick.toml for the fields.
    #[arg(long)]
    suite: Option<PathBuf>,
    /// Override the suite's seeds with 0..N (mean and spread are reported over seeds).
    #[arg(long)]
    seeds: Option<u64>,
    /// Override the suite's heads on frozen features: lp, mlp, nmtune, knn, mlp-select,
    /// nmtune-select (the recipe picked on a validation split), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "HEADS")]
    heads: Option<Vec<StudyHead>>,
    /// Also tune each pre-trained encoder itself: the suite's [finetune] methods, or the ones
    /// listed (lora, lora-nmtune, ft, ft-nmtune; LoRA needs a ViT or text suite, such as
    /// --preset vit or --preset text).
    #[arg(long, num_args = 0..=1, value_delimiter = ',', value_name = "METHODS", value_enum)]
    finetune: Option<Vec<FinetuneMethod>>,
    /// WiSE-FT with --finetune: also score each fine-tuned encoder mixed with its pre-trained
    /// weights at these fine-tuned shares (rows named like ft-wise0.5), e.g. 0,0.5,1.
    #[arg(long, value_delimiter = ',', value_name = "A", requires = "finetune")]
    wise_alpha: Vec<f64>,
    #[command(flatten)]
    devices: DevicesArg,
}

impl StudyArgs {
    /// The suite with its seeds, and the fine-tuning plan when asked.
    fn study(&self) -> Result<StudyFile> {
        let mut suite = load_suite(&self.preset, self.suite.as_deref(), self.seeds)?;
        if let Some(heads) = &self.heads {
            suite = suite.with_heads(heads.clone())?;
        }
        let finetune = match &self.finetune {
            None => None,
            Some(methods) => {
                let mut plan =
                    suite.finetune_plan((!methods.is_empty()).then(|| methods.clone()))?;
                if !self.wise_alpha.is_empty() {
                    plan.wise_alphas = self.wise_alpha.clone();
                    plan.validate()?;
                }
                Some(plan)
            }
        };
        Ok(StudyFile { suite, finetune })
    }
}

/// The study's progress on one bar, with a line per finished step above it.
struct Progress {
    bar: StepBar,
}

/// `ID 97.40%  rotated-30 79.50% ...` for a progress line.
fn accuracies(id: f64, ood: &BTreeMap<String, f64>) -> String {
    format!(
        "ID {:.2}%{}",
        id * 100.0,
        ood.iter().map(|(n, a)| format!("  {n} {:.2}%", a * 100.0)).collect::<String>()
    )
}

impl StudyObserver for Progress {
    fn on_event(&mut self, event: StudyEvent<'_>) {
        match event {
            StudyEvent::Pretraining { tag } => self.bar.message(&format!("{tag}: pre-training")),
            StudyEvent::PretrainEpoch { tag, record, epochs } => {
                self.bar.message(&format!("{tag}: pre-training epoch {}/{epochs} loss {:.3}", record.epoch, record.loss))
            }
            StudyEvent::Pretrained { tag, epochs_trained, epochs_reused, train_accuracy } => self.bar.line(&format!(
                "{tag}: pre-trained ({epochs_trained} epochs now, {epochs_reused} reused), train accuracy on noisy labels {:.1}%",
                train_accuracy * 100.0
            )),
            StudyEvent::Tuning { tag, task, method } => self.bar.message(&format!("{tag} {task} {method}: tuning")),
            StudyEvent::Cell { tag, task, method, fraction, accuracy, ood, params } => {
                let line = match params {
                    Some(p) => format!("{tag} {task:<12} {method:<11} ({} of {} parameters trained): {}", p.trainable, p.total, accuracies(accuracy, ood)),
                    None => format!("{tag} {task:<12} {method:<7} {:>5.0}% data: {}", fraction * 100.0, accuracies(accuracy, ood)),
                };
                self.bar.line(&line);
                self.bar.advance(&format!("{tag} {task} {method}"));
            }
            _ => {}
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Some(SweepCommand::Report(report)) => run_report(&report.out, &report.backend),
        Some(SweepCommand::Slurm(slurm)) => slurm::run(*slurm),
        None => run_study(&args.study, &args.out, args.shard),
    }
}

fn run_study(study_args: &StudyArgs, out: &Path, shard: Option<Shard>) -> Result<()> {
    let study = study_args.study()?;
    let devices = study_args.devices.devices()?;
    let options = StudyOptions {
        out: out.to_path_buf(),
        devices: devices.iter().map(|d| d.device.clone()).collect(),
        backend: devices[0].description.clone(),
        finetune: study.finetune.clone(),
        shard,
        mode: StudyMode::Run,
    };
    if devices.len() > 1 {
        eprintln!("pre-training on {}", describe(&devices));
    }
    // Every shard writes the same file, so the report can be built from the folder alone.
    study.write(out)?;
    let started = Instant::now();
    let cells = cell_count(&study.suite, options.finetune.as_ref(), shard);
    let mut progress = Progress { bar: StepBar::new("sweep", cells) };
    let results = study.suite.run(&options, &mut progress);
    progress.bar.finish();
    let results = results?;
    match shard {
        None => report::write_all(out, &results)?,
        Some(shard) => eprintln!(
            "shard {shard}: {cells} cells in {}; `nml sweep report --out {}` builds the report once every shard is done",
            out.display(),
            out.display()
        ),
    }
    eprintln!(
        "sweep done in {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// The report of the study in `out`, from the cells its runs and shards have finished.
fn run_report(out: &Path, backend: &BackendArg) -> Result<()> {
    let study = StudyFile::read(out)?;
    let device = backend.device()?;
    let options = StudyOptions {
        out: out.to_path_buf(),
        devices: vec![device.device.clone()],
        backend: device.description.clone(),
        finetune: study.finetune.clone(),
        shard: None,
        mode: StudyMode::Report,
    };
    let results = study.suite.run(&options, &mut ())?;
    report::write_all(out, &results)?;
    let total = cell_count(&study.suite, study.finetune.as_ref(), None);
    if results.missing.is_empty() {
        eprintln!("report of all {total} cells in {}", out.display());
    } else {
        eprintln!(
            "report of {} of {total} cells in {}; missing (run the sweep or its shards again to finish them):",
            total - results.missing.len(),
            out.display()
        );
        for cell in &results.missing {
            eprintln!("  {cell}");
        }
    }
    Ok(())
}
