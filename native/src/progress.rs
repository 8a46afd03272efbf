//! Progress bars that follow training runs and the study.

use indicatif::{ProgressBar, ProgressStyle};
use nml_core::Observer;
use nml_core::finetune::FinetuneEpoch;
use nml_core::pretrain::EpochRecord;
use nml_core::tune::EpochStats;

/// An epoch progress bar showing the latest loss (and validation accuracy when there is one).
pub struct EpochBar {
    bar: ProgressBar,
}

impl EpochBar {
    pub fn new(label: &str, epochs: usize) -> Self {
        let bar = ProgressBar::new(epochs as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {pos}/{len} epochs {msg} ({elapsed})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        Self { bar }
    }

    /// Moves to `epoch` (1-based) with `message` beside the bar.
    pub fn show(&self, epoch: usize, message: &str) {
        self.bar.set_message(message.to_string());
        self.bar.set_position(epoch as u64);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer<EpochStats> for EpochBar {
    fn on_epoch(&mut self, stats: &EpochStats) {
        if stats.epoch as u64 <= self.bar.position() {
            // A new grid point of --select starts over.
            self.bar.set_position(0);
        }
        let val = stats.val_accuracy.map(|a| format!(" val {:.2}%", a * 100.0)).unwrap_or_default();
        self.show(stats.epoch, &format!("loss {:.4}{val}", stats.loss));
    }
}

impl Observer<FinetuneEpoch> for EpochBar {
    fn on_epoch(&mut self, e: &FinetuneEpoch) {
        self.show(e.epoch, &format!("loss {:.4} ce {:.4} ({:.1} s)", e.loss, e.ce, e.seconds));
    }
}

impl Observer<EpochRecord> for EpochBar {
    fn on_epoch(&mut self, r: &EpochRecord) {
        self.show(r.epoch, &format!("loss {:.4} acc {:.1}%", r.loss, r.train_accuracy * 100.0));
    }
}

/// A bar over the steps of a long job (the sweep's tuned cells); lines printed through
/// [`StepBar::line`] appear above it instead of breaking it.
pub struct StepBar {
    bar: ProgressBar,
}

impl StepBar {
    pub fn new(label: &str, steps: usize) -> Self {
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}, ~{eta} left)",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        Self { bar }
    }

    pub fn line(&self, text: &str) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    pub fn message(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }

    /// Moves to step `done`.
    pub fn set_position(&self, done: usize) {
        self.bar.set_position(done as u64);
    }

    pub fn advance(&self, message: &str) {
        self.bar.set_message(message.to_string());
        self.bar.inc(1);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
