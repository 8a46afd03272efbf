//! `nml export-model`: an encoder nml trained, as safetensors in the key layout of the PyTorch
//! library its architecture comes from, so torchvision loads it with `load_state_dict`.

use std::path::PathBuf;

use burn::module::Module;
use nml_core::io::write_atomic;
use nml_core::{EncoderFile, Result};

#[derive(clap::Args)]
pub struct Args {
    /// A model written by `nml pretrain` (its `model.safetensors`), or a fine-tuned one exported
    /// by `nml tune --export`, of a standard architecture (e.g. `--model resnet50`).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Where to write the `.safetensors` file.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let saved = EncoderFile::read(&args.checkpoint, &nml_core::Device::flex())?;
    let pretraining = serde_json::to_string(&saved.pretraining.config).expect("plain data");
    let metadata = [("format", "pt".to_string()), ("nml_pretraining", pretraining)];
    let bytes = saved.encoder.to_pytorch_safetensors(&metadata)?;
    write_atomic(&args.out, &bytes)?;
    let layout = saved.encoder.pytorch_layout().map_or("PyTorch", |l| l.library);
    println!(
        "{}: {} weights and batch-norm statistics in {layout}'s layout ({:.1} MB) -> {}",
        args.checkpoint.display(),
        saved.encoder.num_params(),
        bytes.len() as f64 / 1e6,
        args.out.display()
    );
    Ok(())
}
