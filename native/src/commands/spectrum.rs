//! `nml spectrum`: singular values, SVE and LSVR of feature sets; JSON and a plot.

use std::path::PathBuf;

use nml_core::Result;
use nml_core::spectrum::{GramPrecision, Preprocess, SpectrumReport, measure_matrix};

use super::write_json;
use crate::args::BackendArg;
use crate::plot::{PlotSeries, spectrum_plot};
use crate::sets::read_matrix;

#[derive(clap::Args)]
pub struct Args {
    /// Feature sets: `set.safetensors`, `features.npy,labels.npy`, or a bare `features.npy`
    /// (N x D; a spectrum needs no labels).
    #[arg(required = true)]
    features: Vec<String>,
    /// paper (rows L2-normalised, then row-centred), centered (columns centred) or raw.
    #[arg(long, value_enum, default_value_t = Preprocess::Paper)]
    mode: Preprocess,
    /// auto (fast f32 Gram, exact f64 when needed), fast or exact.
    #[arg(long, value_enum, default_value_t = GramPrecision::Auto)]
    precision: GramPrecision,
    /// JSON output: one object for one input, an array for several.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Log-scale spectrum plot, all inputs overlaid (.png or .svg).
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArg,
}

pub fn print_table(reports: &[SpectrumReport]) {
    println!(
        "{:<40} {:>7} {:>6} {:>8} {:>10} {:>9} {:>8} {:>7} {:>8} {:>10} {:>15}",
        "features",
        "n",
        "d",
        "SVE",
        "LSVR s1/Σ",
        "-ln LSVR",
        "RankMe",
        "α-ReQ",
        "NESum",
        "condition",
        "method"
    );
    let optional =
        |v: Option<f64>, digits: usize| v.map_or("–".into(), |v| format!("{v:.digits$}"));
    for r in reports {
        let m = &r.metrics;
        println!(
            "{:<40} {:>7} {:>6} {:>8.4} {:>10.5} {:>9.4} {:>8.2} {:>7} {:>8} {:>10} {:>15}",
            shorten(&r.name, 40),
            r.n,
            r.d,
            m.sve,
            m.lsvr_ratio,
            m.lsvr_neglog,
            m.rankme,
            optional(m.alpha_req, 3),
            optional(m.nesum, 2),
            optional(m.condition_number, 1),
            r.method
        );
    }
}

pub fn shorten(s: &str, width: usize) -> String {
    let count = s.chars().count();
    if count <= width {
        s.to_string()
    } else {
        let tail: String = s.chars().skip(count - (width - 1)).collect();
        format!("…{tail}")
    }
}

pub fn run(args: Args) -> Result<()> {
    let device = args.backend.device()?;
    let mut reports = Vec::new();
    for spec in &args.features {
        let start = std::time::Instant::now();
        let m = read_matrix(spec)?;
        let report = measure_matrix(
            &m.name,
            &m.values,
            m.n,
            m.d,
            args.mode,
            args.precision,
            &device.device,
        )?;
        let seconds = start.elapsed().as_secs_f64();
        eprintln!("{spec}: {} x {} in {seconds:.2} s", report.n, report.d);
        reports.push(report);
    }
    println!("mode: {}", args.mode.name());
    print_table(&reports);
    if let Some(path) = &args.out {
        if reports.len() == 1 {
            write_json(path, &reports[0])?;
        } else {
            write_json(path, &reports)?;
        }
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        let series: Vec<PlotSeries> = reports.iter().map(PlotSeries::from_report).collect();
        spectrum_plot(
            path,
            &format!("Singular value spectrum ({} mode)", args.mode.name()),
            &series,
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
