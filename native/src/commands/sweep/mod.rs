//! `nml sweep`: the paper's study in one command (core's `study` does the work): for every
//! noise ratio and seed, pre-train (or reuse the finished checkpoint), extract features for every
//! task, measure SVE and LSVR, tune LP / MLP / NMTune heads at every data fraction, with
//! `--finetune` also tune the encoder itself; then write results.json, results.csv, summary.md
//! and the plots. Every finished step is kept on disk and not redone when the sweep runs again.

mod figures;
mod presets;
mod report;

pub use presets::load_suite;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use nml_core::Result;
use nml_core::finetune::FinetuneMethod;
use nml_core::io::write_atomic;
use nml_core::study::{StudyEvent, StudyObserver, StudyOptions, cell_count};

use crate::args::{DevicesArg, describe};
use crate::progress::StepBar;

#[derive(clap::Args)]
pub struct Args {
    /// Built-in suite: quick (starter digits, minutes on a 2-core CPU), vit (the same with a small
    /// ViT, for --finetune lora), full (Fashion-MNIST, for a GPU), gpu (torchvision's
    /// ResNet-18 on CIFAR-100, for a desktop GPU) or text (all-MiniLM-L6-v2 on BBC News, after
    /// scripts/fetch-data).
    #[arg(long, default_value = "quick", conflicts_with = "suite")]
    preset: String,
    /// A suite file (TOML) of your own; see native/suites/quick.toml for the fields.
    #[arg(long)]
    suite: Option<PathBuf>,
    /// Output folder: runs/, features/, tuned/, results.json, results.csv, summary.md, plots.
    #[arg(long, default_value = "nml-sweep")]
    out: PathBuf,
    /// Override the suite's seeds with 0..N (mean and spread are reported over seeds).
    #[arg(long)]
    seeds: Option<u64>,
    /// Also tune each pre-trained encoder itself: the suite's [finetune] methods, or the ones
    /// listed (lora, lora-nmtune, ft, ft-nmtune; LoRA needs a ViT or text suite, such as
    /// --preset vit or --preset text).
    #[arg(long, num_args = 0..=1, value_delimiter = ',', value_name = "METHODS", value_enum)]
    finetune: Option<Vec<FinetuneMethod>>,
    #[command(flatten)]
    devices: DevicesArg,
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
    let suite = load_suite(&args.preset, args.suite.as_deref(), args.seeds)?;
    let finetune = match &args.finetune {
        None => None,
        Some(methods) => Some(suite.finetune_plan((!methods.is_empty()).then(|| methods.clone()))?),
    };
    let devices = args.devices.devices()?;
    let options = StudyOptions {
        out: args.out.clone(),
        devices: devices.iter().map(|d| d.device.clone()).collect(),
        backend: devices[0].description.clone(),
        finetune,
    };
    if devices.len() > 1 {
        eprintln!("pre-training on {}", describe(&devices));
    }
    let started = Instant::now();
    let mut progress =
        Progress { bar: StepBar::new("sweep", cell_count(&suite, options.finetune.as_ref())) };
    let results = suite.run(&options, &mut progress);
    progress.bar.finish();
    let results = results?;
    results.write_data(&args.out)?;
    write_atomic(&args.out.join("summary.md"), report::summary(&results).as_bytes())?;
    figures::render_all(&args.out, &results)?;
    eprintln!(
        "sweep done in {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
