//! The end-to-end run on the built-in starter data: pixel features of real digits, their
//! spectra, and LP / MLP / NMTune heads evaluated in and out of domain.

use std::fmt::Write as _;
use std::path::PathBuf;

use nml_core::io::write_atomic;
use nml_core::spectrum::{GramPrecision, Preprocess, measure};
use nml_core::tune::{Method, TuneConfig, TuneReport, tune};
use nml_core::{FeatureSet, ImageSet, Result, StarterSet};

use super::write_json;
use crate::args::BackendArg;
use crate::plot::{PlotSeries, spectrum_plot};
use crate::progress::EpochBar;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder for features, reports, plots and summary.md.
    #[arg(long, default_value = "nml-demo")]
    out: PathBuf,
    /// Epochs per head (the paper's recipe).
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    backend: BackendArg,
}

/// Images are resampled to this side so every domain shares one feature space.
const SIDE: usize = 14;

fn features(images: &ImageSet, domain: &str) -> Result<FeatureSet> {
    Ok(images.resized(SIDE, SIDE).pixel_features()?.with_domain(Some(domain.to_string())))
}

pub fn run(args: Args) -> Result<()> {
    let device = args.backend.device()?;
    let start = std::time::Instant::now();
    let mnist = features(&ImageSet::starter(StarterSet::Mnist)?, "mnist")?;
    let split = 8000.min(mnist.n() * 4 / 5);
    let train = mnist.subset(&(0..split).collect::<Vec<_>>(), "mnist-train");
    let test = mnist.subset(&(split..mnist.n()).collect::<Vec<_>>(), "mnist-test");
    let ood = vec![
        (
            "opencv-digits".to_string(),
            features(&ImageSet::starter(StarterSet::OpencvDigits)?, "opencv-digits")?
                .with_name("opencv-digits"),
        ),
        (
            "sklearn-digits".to_string(),
            features(&ImageSet::starter(StarterSet::SklearnDigits)?, "sklearn-digits")?
                .with_name("sklearn-digits"),
        ),
    ];
    let feature_dir = args.out.join("features");
    for set in
        std::iter::once(&train).chain(std::iter::once(&test)).chain(ood.iter().map(|(_, s)| s))
    {
        set.write(&feature_dir.join(format!("{}.safetensors", set.name())))?;
    }
    eprintln!(
        "features: {SIDE}x{SIDE} pixels of MNIST ({} train / {} test), OpenCV digits ({}) and scikit-learn digits ({}) in {}",
        train.n(),
        test.n(),
        ood[0].1.n(),
        ood[1].1.n(),
        feature_dir.display()
    );

    let mut spectra = Vec::new();
    for set in std::iter::once(&test).chain(ood.iter().map(|(_, s)| s)) {
        spectra.push(measure(set, Preprocess::Paper, GramPrecision::Auto, &device.device)?);
    }
    println!("\n== Spectra of the raw pixel features (paper mode) ==");
    super::spectrum::print_table(&spectra);
    write_json(&args.out.join("spectrum.json"), &spectra)?;
    let series: Vec<PlotSeries> = spectra.iter().map(PlotSeries::from_report).collect();
    for ext in ["png", "svg"] {
        spectrum_plot(
            &args.out.join(format!("spectrum.{ext}")),
            "Pixel-feature spectra: ID (MNIST) and OOD digit sets",
            &series,
        )?;
    }

    let mut reports: Vec<TuneReport> = Vec::new();
    for method in [Method::Lp, Method::Mlp, Method::Nmtune] {
        let config =
            TuneConfig { epochs: args.epochs, seed: args.seed, ..TuneConfig::for_method(method) };
        let t0 = std::time::Instant::now();
        let mut bar = EpochBar::new(method.name(), config.epochs);
        let outcome = tune(&train, &test, &ood, &config, &device.device, &mut bar);
        bar.finish();
        let mut report = outcome?.report;
        report.seconds = t0.elapsed().as_secs_f64();
        report.backend = device.description.clone();
        super::tune::print_report(&report);
        write_json(&args.out.join(format!("report-{}.json", method.name())), &report)?;
        reports.push(report);
    }

    let mut md = String::new();
    let _ = writeln!(md, "# nml demo: spectra and heads on the starter digits\n");
    let _ = writeln!(
        md,
        "Backend: {}. Features: {SIDE}x{SIDE} pixels. {} epochs per head, seed {}.\n",
        device.description, args.epochs, args.seed
    );
    let _ = writeln!(
        md,
        "| method | ID MNIST | OOD OpenCV | OOD sklearn | SVE test before -> after | LSVR OpenCV before -> after | seconds |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for r in &reports {
        let (id, ocv) = (&r.spectra[0], &r.spectra[1]);
        let _ = writeln!(
            md,
            "| {} | {:.2}% | {:.2}% | {:.2}% | {:.4} -> {:.4} | {:.5} -> {:.5} | {:.1} |",
            r.method.name(),
            r.accuracy * 100.0,
            r.ood["opencv-digits"] * 100.0,
            r.ood["sklearn-digits"] * 100.0,
            id.before.metrics.sve,
            id.after.metrics.sve,
            ocv.before.metrics.lsvr_ratio,
            ocv.after.metrics.lsvr_ratio,
            r.seconds
        );
    }
    write_atomic(&args.out.join("summary.md"), md.as_bytes())?;
    println!("\n{md}");
    eprintln!("done in {:.1} s; outputs in {}", start.elapsed().as_secs_f64(), args.out.display());
    Ok(())
}
