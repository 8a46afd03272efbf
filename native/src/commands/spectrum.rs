//! `nml spectrum`: singular values, SVE and LSVR of feature sets; JSON and a plot.

use std::path::PathBuf;

use nml_core::Result;
use nml_core::spectrum::{GramPrecision, Preprocess, SpectrumReport, measure};

use super::write_json;
use crate::args::BackendArg;
use crate::plot::{PlotSeries, spectrum_plot};
use crate::sets::read_features;

#[derive(clap::Args)]
pub struct Args {
    /// Feature sets: `set.safetensors` or `features.npy,labels.npy`.
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
        "{:<40} {:>7} {:>6} {:>8} {:>9} {:>10} {:>9} {:>15}",
        "features", "n", "d", "SVE", "eff.rank", "LSVR s1/Σ", "-ln LSVR", "method"
    );
    for r in reports {
        println!(
            "{:<40} {:>7} {:>6} {:>8.4} {:>9.2} {:>10.5} {:>9.4} {:>15}",
            shorten(&r.name, 40),
            r.n,
            r.d,
            r.sve,
            r.effective_rank,
            r.lsvr_ratio,
            r.lsvr_neglog,
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
        let set = read_features(spec)?;
        let start = std::time::Instant::now();
        let report = measure(&set, args.mode, args.precision, &device.device)?;
        eprintln!("{spec}: {} x {} in {:.2} s", set.n(), set.d(), start.elapsed().as_secs_f64());
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
