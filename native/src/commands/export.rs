//! `nml export`: feature sets between formats, or pixel features of IDX images.

use std::path::PathBuf;

use nml_core::data::FeatureDtype;
use nml_core::{ImageSet, NmlError, Result};

use crate::sets::{read_features, write_features};

#[derive(clap::Args)]
pub struct Args {
    /// A feature set to convert: `set.safetensors` or `features.npy,labels.npy`.
    #[arg(long, conflicts_with_all = ["idx_images", "idx_labels"])]
    input: Option<String>,
    /// IDX image file (gzip or not) whose pixels become the features.
    #[arg(long, requires = "idx_labels")]
    idx_images: Option<PathBuf>,
    /// IDX label file matching --idx-images.
    #[arg(long, requires = "idx_images")]
    idx_labels: Option<PathBuf>,
    /// Resample images to HxW before flattening, e.g. 14x14.
    #[arg(long, value_parser = parse_size)]
    size: Option<(usize, usize)>,
    /// Where to write: `set.safetensors` or `features.npy,labels.npy`.
    #[arg(long)]
    output: String,
    /// Record the data domain in the metadata (safetensors only).
    #[arg(long)]
    domain: Option<String>,
    /// Record class names in the metadata, comma-separated (safetensors only).
    #[arg(long, value_delimiter = ',')]
    class_names: Option<Vec<String>>,
    /// The features' number type in a safetensors output: f32, or f16 (half the size).
    #[arg(long, value_enum, default_value_t = FeatureDtype::F32)]
    dtype: FeatureDtype,
}

fn parse_size(s: &str) -> std::result::Result<(usize, usize), String> {
    let (h, w) = s.split_once('x').ok_or_else(|| format!("expected HxW, got {s:?}"))?;
    match (h.parse(), w.parse()) {
        (Ok(h), Ok(w)) if h > 0 && w > 0 && h <= 4096 && w <= 4096 => Ok((h, w)),
        _ => Err(format!("expected HxW with sizes from 1 to 4096, got {s:?}")),
    }
}

pub fn run(args: Args) -> Result<()> {
    let mut set = match (&args.input, &args.idx_images, &args.idx_labels) {
        (Some(spec), None, None) => read_features(spec)?,
        (None, Some(images), Some(labels)) => {
            let mut images = ImageSet::read_idx(images, labels)?;
            if let Some((h, w)) = args.size {
                images = images.resized(h, w);
            }
            images.pixel_features()?
        }
        _ => {
            return Err(NmlError::Invalid(
                "give --input, or --idx-images with --idx-labels".into(),
            ));
        }
    };
    if args.domain.is_some() {
        set = set.with_domain(args.domain.clone());
    }
    if let Some(names) = args.class_names.clone() {
        set = set.with_class_names(names)?;
    }
    match args.dtype {
        FeatureDtype::F32 => write_features(&set, &args.output)?,
        _ if args.output.contains(',') => {
            return Err(NmlError::Invalid(
                "--dtype f16 writes safetensors; name one .safetensors --output".into(),
            ));
        }
        dtype => set.write_as(std::path::Path::new(&args.output), dtype)?,
    }
    println!(
        "{}: {} samples x {} features, {} classes -> {}",
        set.name(),
        set.n(),
        set.d(),
        set.num_classes(),
        args.output
    );
    Ok(())
}
