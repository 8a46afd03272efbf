//! The paper's study as one call: for every pre-training objective, seed and noise ratio,
//! pre-train an encoder on noisy labels (or captions), extract every downstream task's
//! features, measure their spectra, tune every head at every data fraction (and, when asked,
//! the encoder itself), and collect every number with what produced it. The command line's
//! `nml sweep` and any Rust program drive the same code.
//!
//! # Examples
//!
//! ```no_run
//! use nml_core::study::{StudyMode, StudyOptions, Suite, run_study};
//! use nml_core::Device;
//!
//! let suite = Suite::from_toml(&std::fs::read_to_string("native/suites/quick.toml")?, "quick.toml")?;
//! let options = StudyOptions {
//!     out: "nml-sweep".into(),
//!     devices: vec![Device::flex()],
//!     backend: "cpu".into(),
//!     finetune: None,
//!     shard: None,
//!     mode: StudyMode::Run,
//! };
//! let results = run_study(&suite, &options, &mut ())?;
//! results.write_data(&options.out)?;
//! let eval = &results.evals()[0];
//! println!("{} {}: LP at 0% noise {:?}", eval.0, eval.2, results.accuracy(eval, "lp", 0.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bootstrap;
mod difference;
mod geometry;
mod prediction;
mod results;
mod run;
mod shard;
mod suite;

pub use bootstrap::{BOOTSTRAP_RESAMPLES, bootstrap_interval, mean_interval};
pub use difference::{Difference, FINDING_SEEDS};
pub use geometry::{GEOMETRY_K, Geometry, GeometryMeasure, GeometryRow};
pub use prediction::{MetricPrediction, ranks, spearman, spearman_interval};
pub use results::{Curve, Eval, Figure, Panel, Point, ResultRow, Results, mean_std};
pub use run::{
    StudyEvent, StudyFile, StudyMode, StudyObserver, StudyOptions, cell_count, run_study, run_tag,
    run_text_study,
};
pub use shard::Shard;
pub use suite::{
    FinetuneSuite, Modality, ObjectiveKind, StudyHead, StudySuite, Suite, Task, TextSuite,
    TextTask, TuneSuite,
};
