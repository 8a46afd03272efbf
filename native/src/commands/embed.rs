//! `nml embed`: features of texts from a pretrained sentence encoder, ready for `nml tune`,
//! `nml spectrum` and the browser app.

use std::path::PathBuf;

use nml_core::data::TextSource;
use nml_core::models::SentenceEncoder;
use nml_core::{NmlError, Result};

use crate::args::BackendArg;
use crate::progress::StepBar;
use crate::sets::write_features;

#[derive(clap::Args)]
pub struct Args {
    /// The encoder: minilm, a BERT-family sentence-transformers model such as all-MiniLM-L6-v2.
    #[arg(long, value_enum, default_value_t = TextModel::Minilm)]
    model: TextModel,
    /// The model's folder in sentence-transformers' layout (config.json, model.safetensors,
    /// tokenizer.json, ...), e.g. data/fetched/all-minilm-l6-v2 from scripts/fetch-data.
    #[arg(long)]
    weights: PathBuf,
    /// Texts: `.jsonl` (one object a line, `text` and an optional `label`: a class name or
    /// number), `.csv` (a header with `text` and optionally `label`), or plain text (one text a
    /// line), or a folder of class subfolders of text files; then optionally steps such as
    /// `|shuffle=0|rows=0..500|part=title` (see the guide). Rows come out in input order.
    #[arg(long)]
    input: TextSource,
    /// Where to write: `set.safetensors` or `features.npy,labels.npy`.
    #[arg(long)]
    out: String,
    /// Texts per forward pass (sorted by length first, so each batch pads little).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Record the data domain in the metadata (default: the input's path).
    #[arg(long)]
    domain: Option<String>,
    #[command(flatten)]
    backend: BackendArg,
}

/// The text encoders `nml embed` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TextModel {
    /// BERT-family (all-MiniLM-L6-v2 and its kin): mean pooling, normalised where the model is.
    Minilm,
}

pub fn run(args: Args) -> Result<()> {
    if args.batch_size == 0 {
        return Err(NmlError::Invalid("--batch-size must be at least 1".into()));
    }
    let texts = args.input.load()?;
    let device = args.backend.device()?;
    let TextModel::Minilm = args.model;
    let encoder = SentenceEncoder::read_dir(&args.weights, &device.device)?;
    let bar = StepBar::new("embed", texts.len());
    let set = encoder
        .features(&texts, args.batch_size, &device.device, &mut |done| bar.set_position(done));
    bar.finish();
    let name = args.input.to_string();
    let set = set?
        .with_name(name.clone())
        .with_domain(Some(args.domain.clone().unwrap_or_else(|| name.clone())));
    let d = set.d();
    write_features(&set, &args.out)?;
    println!(
        "{name}: {} texts{} -> {} x {d} features -> {}",
        texts.len(),
        if texts.labels().is_some() {
            format!(", {} classes", set.num_classes())
        } else {
            String::new()
        },
        set.n(),
        args.out
    );
    Ok(())
}
