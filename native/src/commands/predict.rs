//! `nml predict`: classes of features from a head saved by `nml tune --save`.

use std::path::PathBuf;

use nml_core::data::npy_file::{read_f32, write_i64};
use nml_core::io::{read_file, write_atomic};
use nml_core::tune::{head_from_bytes, predict};
use nml_core::{NmlError, Result};

use crate::args::BackendArg;
use crate::sets::read_features;

#[derive(clap::Args)]
pub struct Args {
    /// A head written by `nml tune --save`.
    #[arg(long)]
    head: PathBuf,
    /// Features to classify: `set.safetensors`, `features.npy,labels.npy` (accuracy is
    /// reported), or a lone `features.npy`.
    #[arg(long)]
    features: String,
    /// Write the predicted classes (.npy, int64).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArg,
}

pub fn run(args: Args) -> Result<()> {
    let device = args.backend.device()?;
    let head_name = args.head.display().to_string();
    let (head, shape, config) =
        head_from_bytes(&read_file(&args.head)?, &head_name, &device.device)?;
    let lone_npy = !args.features.contains(',') && args.features.ends_with(".npy");
    let (features, d, labels) = if lone_npy {
        let array = read_f32(&read_file(std::path::Path::new(&args.features))?, &args.features)?;
        let &[_, d] = array.shape.as_slice() else {
            return Err(NmlError::format(
                &args.features,
                format!("features must be 2-D, found {:?}", array.shape),
            ));
        };
        (array.data, d, None)
    } else {
        let set = read_features(&args.features)?;
        (set.features().to_vec(), set.d(), Some(set.labels().to_vec()))
    };
    if d != shape.d {
        return Err(NmlError::format(
            &args.features,
            format!("features have {d} dimensions but the head {head_name} expects {}", shape.d),
        ));
    }
    if let Some(i) = features.iter().position(|v| !v.is_finite()) {
        return Err(NmlError::format(
            &args.features,
            format!("non-finite value at row {}, column {}", i / d, i % d),
        ));
    }
    let predicted = predict(&head, &features, d, &device.device)?;
    println!(
        "{} rows classified by a {} head ({} classes)",
        predicted.len(),
        config.method.name(),
        shape.num_classes
    );
    if let Some(labels) = labels {
        let correct = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
        println!("accuracy: {:.2}%", 100.0 * correct as f64 / labels.len() as f64);
    }
    if let Some(path) = &args.out {
        let values: Vec<i64> = predicted.iter().map(|&p| i64::from(p)).collect();
        write_atomic(path, &write_i64(&[values.len()], &values))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
