//! `nml noise`: seeded label noise on a labels file, with the confusion it made.

use std::path::{Path, PathBuf};

use nml_core::data::npy_file::{read_i64, write_i64, write_u8};
use nml_core::io::{read_file, write_atomic};
use nml_core::noise::{LabelNoise, confusion};
use nml_core::{NmlError, Result};

#[derive(Clone, Copy, clap::ValueEnum)]
enum Kind {
    /// A fraction `ratio` of labels moved uniformly to one of the other classes.
    Symmetric,
    /// The authors' variant: `ratio` of labels redrawn uniformly over all classes.
    SymmetricAll,
    /// `ratio` of labels moved to the next class (or `--mapping`).
    PairFlip,
    /// Labels moved by a row-stochastic transition matrix (`--matrix`).
    Transition,
}

#[derive(clap::Args)]
pub struct Args {
    /// Integer labels (.npy: int64, int32 or uint8).
    #[arg(long)]
    labels: PathBuf,
    #[arg(long, value_enum)]
    kind: Kind,
    /// Fraction of samples to corrupt (not used by `transition`).
    #[arg(long, default_value_t = 0.0)]
    ratio: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of classes (default: largest label + 1).
    #[arg(long)]
    num_classes: Option<usize>,
    /// Pair-flip targets, one per class, e.g. `1,2,0`.
    #[arg(long, value_delimiter = ',')]
    mapping: Option<Vec<u32>>,
    /// Transition matrix as CSV, one row per true class.
    #[arg(long)]
    matrix: Option<PathBuf>,
    /// Noisy labels (.npy, int64).
    #[arg(long)]
    out: PathBuf,
    /// Also write the mask of changed labels (.npy, uint8).
    #[arg(long)]
    mask: Option<PathBuf>,
}

fn read_matrix(path: &Path) -> Result<Vec<Vec<f64>>> {
    let text = String::from_utf8(read_file(path)?)
        .map_err(|_| NmlError::format(path.display().to_string(), "not UTF-8 text"))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            line.split(',')
                .map(|v| {
                    v.trim().parse::<f64>().map_err(|_| {
                        NmlError::format(
                            path.display().to_string(),
                            format!("line {}: {v:?} is not a number", i + 1),
                        )
                    })
                })
                .collect()
        })
        .collect()
}

pub fn run(args: Args) -> Result<()> {
    let name = args.labels.display().to_string();
    let raw = read_i64(&read_file(&args.labels)?, &name)?;
    if raw.shape.len() != 1 {
        return Err(NmlError::format(
            &name,
            format!("labels must be 1-D, found shape {:?}", raw.shape),
        ));
    }
    if let Some(i) = raw.data.iter().position(|&l| !(0..=u32::MAX as i64).contains(&l)) {
        return Err(NmlError::format(
            &name,
            format!("label {} at index {i} is not a class index", raw.data[i]),
        ));
    }
    let labels: Vec<u32> = raw.data.iter().map(|&l| l as u32).collect();
    let num_classes =
        args.num_classes.unwrap_or_else(|| labels.iter().max().map_or(0, |&m| m as usize + 1));
    let noise = match args.kind {
        Kind::Symmetric => LabelNoise::Symmetric { ratio: args.ratio },
        Kind::SymmetricAll => LabelNoise::SymmetricAll { ratio: args.ratio },
        Kind::PairFlip => LabelNoise::PairFlip { ratio: args.ratio, mapping: args.mapping.clone() },
        Kind::Transition => {
            let path = args.matrix.as_ref().ok_or_else(|| {
                NmlError::Invalid("--kind transition needs --matrix T.csv".into())
            })?;
            LabelNoise::Transition { matrix: read_matrix(path)? }
        }
    };
    let noisy = noise.apply(&labels, num_classes, args.seed).map_err(|e| match e {
        NmlError::Invalid(m) => NmlError::format(&name, m),
        other => other,
    })?;
    let out: Vec<i64> = noisy.labels.iter().map(|&l| i64::from(l)).collect();
    write_atomic(&args.out, &write_i64(&[out.len()], &out))?;
    if let Some(mask) = &args.mask {
        let bytes: Vec<u8> = noisy.changed.iter().map(|&c| u8::from(c)).collect();
        write_atomic(mask, &write_u8(&[bytes.len()], &bytes))?;
    }
    println!(
        "realised noise rate: {:.4} ({} of {} labels changed)",
        noisy.rate(),
        noisy.changed_count(),
        labels.len()
    );
    let m = confusion(&labels, &noisy.labels, num_classes);
    println!("confusion (rows: clean class, columns: noisy class):");
    print!("{:>6}", "");
    for j in 0..num_classes {
        print!("{j:>7}");
    }
    println!("{:>9}", "noisy %");
    for (i, row) in m.iter().enumerate() {
        let total: usize = row.iter().sum();
        print!("{i:>6}");
        for v in row {
            print!("{v:>7}");
        }
        let changed = total - row[i];
        println!("{:>8.1}%", 100.0 * changed as f64 / total.max(1) as f64);
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
