//! `nml compare A B`: geometry between two encoders' features of the same inputs (principal
//! angles between their top-k subspaces, linear CKA, the top singular vectors' alignment); JSON
//! and a plot.

use std::path::PathBuf;

use nml_core::spectrum::Preprocess;
use nml_core::spectrum::compare::{Comparison, FeatureMatrix, compare};
use nml_core::study::{Curve, Panel, Point};
use nml_core::{NmlError, Result};

use super::write_json;
use crate::plot::{LineFigure, render};
use crate::sets::{Features, read_matrix};

#[derive(clap::Args)]
pub struct Args {
    /// The first encoder's features: `set.safetensors`, `features.npy,labels.npy` or a bare
    /// `features.npy`.
    a: String,
    /// The second encoder's features of the same inputs, in the same order.
    b: String,
    /// The size of the principal subspaces compared.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// paper (rows L2-normalised, then row-centred), centered or raw; columns are centred after.
    #[arg(long, value_enum, default_value_t = Preprocess::Paper)]
    mode: Preprocess,
    /// JSON output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The principal angles against their index (.png or .svg).
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let (a, b) = (read_matrix(&args.a)?, read_matrix(&args.b)?);
    if let (Some(la), Some(lb)) = (&a.labels, &b.labels)
        && la != lb
    {
        return Err(NmlError::Invalid(format!(
            "{} and {} have different labels: a comparison needs the features of the same inputs, in the same order",
            args.a, args.b
        )));
    }
    let comparison = compare(side(&a), side(&b), args.mode, args.k)?;
    print(&comparison);
    if let Some(path) = &args.out {
        write_json(path, &comparison)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        let panels = [Panel {
            title: String::new(),
            series: vec![Curve {
                label: format!(
                    "top {} subspaces, linear CKA {:.3}",
                    comparison.k, comparison.linear_cka
                ),
                points: comparison
                    .principal_angles
                    .iter()
                    .enumerate()
                    .map(|(i, &angle)| Point {
                        x: (i + 1) as f64,
                        y: angle,
                        low: angle,
                        high: angle,
                    })
                    .collect(),
            }],
        }];
        let figure = LineFigure {
            title: "Principal angles between the two encoders' top subspaces",
            x_label: "index",
            y_label: "angle (degrees)",
            panels: &panels,
            log_x: false,
            scatter: false,
        };
        render(path, &figure)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn side(m: &Features) -> FeatureMatrix<'_> {
    FeatureMatrix { name: &m.name, values: &m.values, d: m.d }
}

fn print(c: &Comparison) {
    println!(
        "mode: {}; {} rows, {} and {} dimensions; k = {}",
        c.mode.name(),
        c.n,
        c.d_a,
        c.d_b,
        c.k
    );
    println!(
        "principal angles (degrees): mean {:.2}, largest {:.2}",
        c.mean_angle, c.largest_angle
    );
    let angles: Vec<String> = c.principal_angles.iter().map(|a| format!("{a:.2}")).collect();
    println!("  {}", angles.join(" "));
    println!("linear CKA: {:.4}", c.linear_cka);
    println!("top singular vectors' alignment |u1·u1|: {:.4}", c.top_alignment);
}
