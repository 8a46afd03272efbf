//! `nml`: the command line of the Noisy Model Learning toolkit. It parses, shows progress and
//! renders tables and figures; everything it computes comes from `nml_core`.

mod args;
mod commands;
mod plot;
mod progress;
mod sets;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// See native/Cargo.toml: large tensor buffers are reused instead of page-faulted back in.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "nml",
    version,
    about = "Label noise in pre-training: inject it, measure feature spectra, tune robust heads (NMTune)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run, so the size of the largest variant (tune's many flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Singular-value spectrum, SVE, LSVR and the field's other metrics of one or more feature sets.
    Spectrum(commands::spectrum::Args),
    /// Geometry between two encoders' features of the same inputs: principal angles, linear CKA, top singular vectors.
    Compare(commands::compare::Args),
    /// Inject seeded label noise into a labels file.
    Noise(commands::noise::Args),
    /// Train a linear probe, MLP or NMTune head on features (or LoRA / fine-tune an encoder) and evaluate it in and out of domain.
    Tune(commands::tune::Args),
    /// Predict classes with a head saved by `nml tune --save`.
    Predict(commands::predict::Args),
    /// Convert feature sets between safetensors and .npy pairs, or export pixel features of IDX images.
    Export(commands::export::Args),
    /// An nml-trained encoder of a standard architecture as safetensors in its PyTorch library's key layout.
    ExportModel(commands::export_model::Args),
    /// Pre-train a ResNet or ViT on images with controlled label noise (checkpoint every epoch, --resume).
    Pretrain(commands::pretrain::Args),
    /// Features of a pre-trained model for an image set, as safetensors or a .npy pair.
    Extract(commands::extract::Args),
    /// Features of texts (JSONL, CSV or plain text) from a pretrained sentence encoder.
    Embed(commands::embed::Args),
    /// The paper's study in one command: noisy pre-training, features, spectra, heads, tables, plots.
    Sweep(commands::sweep::Args),
    /// Run spectrum and tuning end to end on the starter data built into nml.
    Demo(commands::demo::Args),
    /// Time nml's paths on this machine: spectrum, WGSL kernels vs composed ops, tuning, pre-training, scaling.
    Bench(commands::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Spectrum(args) => commands::spectrum::run(args),
        Command::Compare(args) => commands::compare::run(args),
        Command::Noise(args) => commands::noise::run(args),
        Command::Tune(args) => commands::tune::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::ExportModel(args) => commands::export_model::run(args),
        Command::Pretrain(args) => commands::pretrain::run(args),
        Command::Extract(args) => commands::extract::run(args),
        Command::Embed(args) => commands::embed::run(args),
        Command::Sweep(args) => commands::sweep::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Demo(args) => commands::demo::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
