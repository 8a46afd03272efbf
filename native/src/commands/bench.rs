//! `nml bench`: what nml's own paths cost on this machine, as ratios taken in one run: the
//! spectrum and its accuracy against f64, the eigen solver against nalgebra's, nml's WGSL
//! kernels against their composed-ops references, a tuning epoch, pre-training throughput, and
//! how spectrum and NMTune cost grow, and the standard models' inference and training steps.
//! `--json` records every timing for `bench/compare.py`, which puts numpy and PyTorch beside
//! them.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use nml_core::bench::{
    eigenvalues_desc, gram_f64_dense, median_seconds, sync, synthetic_feature_set,
    synthetic_features, synthetic_images, teacher_task,
};
use nml_core::data::{AugmentConfig, image_batch};
use nml_core::device::ComputeDevice;
use nml_core::io::write_atomic;
use nml_core::kernels::{self, reference};
use nml_core::pretrain::{DeviceImages, pretrain};
use nml_core::spectrum::{GramPrecision, Preprocess, measure};
use nml_core::study::StudySuite;
use nml_core::tune::{Method, TuneConfig, fit};
use nml_core::{NmlError, Result};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

use super::sweep::load_suite;
use crate::args::BackendArg;
use crate::sets::read_images;

#[derive(clap::Args)]
pub struct Args {
    /// Small sizes: a smoke run of a minute or two instead of the full one (about 15 minutes
    /// on a 2-core CPU).
    #[arg(long)]
    quick: bool,
    /// Device for everything but the f64 references (the kernel section needs wgpu).
    #[command(flatten)]
    backend: BackendArg,
    /// Sections to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "spectrum,eigen,kernels,tune,pretrain,scaling,models,loader,text"
    )]
    only: Vec<Section>,
    /// The loader section's folder of JPEGs: made there from the fetched sample photos when
    /// empty, and kept (so `bench/loader_torch.py` can read the same files); by default a
    /// temporary folder.
    #[arg(long)]
    loader_folder: Option<PathBuf>,
    /// Also write the report (Markdown) here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write every timing here as JSON: `[{"name": ..., "seconds": ...}, ...]`.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The parts of the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    Spectrum,
    Eigen,
    Kernels,
    Tune,
    Pretrain,
    Scaling,
    Models,
    Loader,
    Text,
}

/// A section: the report text it adds, measured on a device (`quick` for small sizes).
type SectionFn<'a> = dyn Fn(&ComputeDevice, bool) -> Result<String> + 'a;

thread_local! {
    /// Every timing taken in this run, by name, for `--json`.
    static TIMINGS: RefCell<Vec<(String, f64)>> = const { RefCell::new(Vec::new()) };
}

/// Records a timing for `--json` and passes it on.
fn timed(name: String, seconds: f64) -> f64 {
    TIMINGS.with(|t| t.borrow_mut().push((name, seconds)));
    seconds
}

pub fn run(args: Args) -> Result<()> {
    let target = args.backend.device()?;
    let mut report = String::new();
    let _ = writeln!(
        report,
        "# nml bench{}\n\nDevice: {}. Times are medians of repeated runs after a warm-up run; ratios are taken in this one run.\n",
        if args.quick { " --quick" } else { "" },
        target.description
    );
    print!("{report}");
    let loader = |target: &ComputeDevice, quick| {
        loader_throughput(target, quick, args.loader_folder.as_deref())
    };
    let sections: [(Section, &SectionFn); 9] = [
        (Section::Spectrum, &spectrum),
        (Section::Eigen, &eigen_solvers),
        (Section::Kernels, &kernel_section),
        (Section::Tune, &tune_epochs),
        (Section::Pretrain, &pretrain_throughput),
        (Section::Scaling, &scaling),
        (Section::Models, &standard_models),
        (Section::Loader, &loader),
        (Section::Text, &sentence_encoder),
    ];
    for (name, section) in sections {
        if args.only.contains(&name) {
            eprintln!("bench: {name:?} ...");
            let text = section(&target, args.quick)?;
            print!("{text}");
            report.push_str(&text);
        }
    }
    if let Some(path) = &args.out {
        write_atomic(path, report.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.json {
        let records: Vec<serde_json::Value> = TIMINGS.with(|t| {
            t.borrow()
                .iter()
                .map(|(name, seconds)| serde_json::json!({ "name": name, "seconds": seconds }))
                .collect()
        });
        super::write_json(
            path,
            &serde_json::json!({ "device": target.description, "timings": records }),
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn features(n: usize, d: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(synthetic_features(n, d, 0), [n, d]), device)
}

/// Seconds since the UNIX epoch, the clock `bench/gpu_util.py` stamps its samples with.
fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |t| t.as_secs_f64())
}

/// Prints a measurement's wall-clock window to stderr as `window LABEL START END`, so that a
/// GPU-utilisation log taken beside the bench (`bench/gpu_util.py`, run by
/// `scripts/device-bench`) can be read per measurement.
fn print_window(label: &str, start: f64) {
    eprintln!("window {label} {start:.3} {:.3}", unix_seconds());
}

/// Runs `work` and prints its window.
fn windowed<T>(label: &str, work: impl FnOnce() -> T) -> T {
    let start = unix_seconds();
    let result = work();
    print_window(label, start);
    result
}

/// [`median_seconds`] with the window of its timed runs printed: the warm-up run, which also
/// compiles GPU kernels, is left out of it.
fn median_windowed(label: &str, repeats: usize, mut work: impl FnMut()) -> f64 {
    let mut start = None;
    let seconds = median_seconds(repeats, || {
        work();
        start.get_or_insert_with(unix_seconds);
    });
    print_window(label, start.expect("median_seconds ran the warm-up"));
    seconds
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

fn repeats(seconds_guess: f64) -> usize {
    if seconds_guess > 5.0 { 3 } else { 5 }
}

/// The default spectrum (paper mode, auto precision) on the device, and its SVE and LSVR
/// against the exact f64 path.
fn spectrum(target: &ComputeDevice, quick: bool) -> Result<String> {
    let sizes: &[(usize, usize)] =
        if quick { &[(2000, 128), (5000, 256)] } else { &[(20000, 1024), (50000, 2048)] };
    let mut out = String::from(
        "## Spectrum (paper mode)\n\nDefault precision (auto: the f32 Gram, on the device or from f32 blocks summed in f64 on the CPU, checked against a model of its rounding and then, where that is too coarse, against its measured error; else the exact f64 path), the exact path alone, and the f32 Gram with no check (fast), each against the exact path's SVE and LSVR.\n\n| features | auto | method | auto: SVE rel. diff | auto: LSVR rel. diff | exact (f64) | fast | fast: SVE rel. diff | fast: LSVR rel. diff |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for &(n, d) in sizes {
        let set = synthetic_feature_set(n, d, 0);
        let mut report = None;
        let t = median_windowed(
            &format!("spectrum-auto-{n}x{d}"),
            repeats(n as f64 * (d * d) as f64 / 2e10),
            || {
                report =
                    Some(measure(&set, Preprocess::Paper, GramPrecision::Auto, &target.device));
            },
        );
        timed(format!("spectrum-auto-{n}x{d}"), t);
        let report = match report.expect("ran") {
            Ok(report) => report,
            // A size this device cannot hold is a finding, not the end of the report.
            Err(e) => {
                let _ = writeln!(
                    out,
                    "| {n} x {d} | failed: {} | | | | | | | |",
                    e.to_string().replace('\n', " ")
                );
                continue;
            }
        };
        let mut exact = None;
        let t_exact = timed(
            format!("spectrum-exact-{n}x{d}"),
            median_seconds(1, || {
                exact =
                    Some(measure(&set, Preprocess::Paper, GramPrecision::Exact, &Device::flex()))
            }),
        );
        let exact = exact.expect("ran")?;
        let mut fast = None;
        let t_fast = timed(
            format!("spectrum-fast-{n}x{d}"),
            median_seconds(1, || {
                fast = Some(measure(&set, Preprocess::Paper, GramPrecision::Fast, &target.device))
            }),
        );
        let fast = fast.expect("ran")?;
        let _ = writeln!(
            out,
            "| {n} x {d} | {t:.3} s | {} | {:.1e} | {:.1e} | {t_exact:.3} s | {t_fast:.3} s | {:.1e} | {:.1e} |",
            report.method,
            relative(report.metrics.sve, exact.metrics.sve),
            relative(report.metrics.lsvr_ratio, exact.metrics.lsvr_ratio),
            relative(fast.metrics.sve, exact.metrics.sve),
            relative(fast.metrics.lsvr_ratio, exact.metrics.lsvr_ratio)
        );
    }
    out.push('\n');
    Ok(out)
}

/// The f64 eigen solve of a symmetric Gram (faer, what the spectrum uses) against nalgebra's.
fn eigen_solvers(_target: &ComputeDevice, quick: bool) -> Result<String> {
    // nalgebra's solver grows far faster than faer's: 2048 would spend minutes on it alone.
    let sizes: &[usize] = if quick { &[128, 256] } else { &[256, 512, 1024] };
    let mut out = String::from(
        "## Eigenvalues of a symmetric Gram (f64, host)\n\n| size | faer (nml's spectrum) | nalgebra | nalgebra / faer |\n|---|---|---|---|\n",
    );
    for &m in sizes {
        let x = synthetic_features(4 * m, m, 1);
        let gram = gram_f64_dense(&x, 4 * m, m);
        let as_nalgebra = nalgebra::DMatrix::<f64>::from_row_slice(m, m, &gram);
        let t_faer = timed(
            format!("eigen-faer-{m}"),
            median_seconds(5, || drop(eigenvalues_desc(&gram, m))),
        );
        let t_nalgebra = timed(
            format!("eigen-nalgebra-{m}"),
            median_seconds(if m >= 1024 { 1 } else { 3 }, || {
                drop(as_nalgebra.clone().symmetric_eigenvalues())
            }),
        );
        let _ = writeln!(
            out,
            "| {m} x {m} | {:.1} ms | {:.1} ms | {:.2}x |",
            t_faer * 1e3,
            t_nalgebra * 1e3,
            t_nalgebra / t_faer
        );
    }
    out.push('\n');
    Ok(out)
}

/// nml's WGSL kernels against their composed-ops references on the same device.
fn kernel_section(target: &ComputeDevice, quick: bool) -> Result<String> {
    let mut out = String::from("## WGSL kernels against composed Burn ops\n\n");
    if !kernels::uses_wgsl(&target.device) {
        out.push_str("Skipped: the kernels run on WGPU devices only (`--backend wgpu` uses a software adapter when there is no GPU).\n\n");
        return Ok(out);
    }
    let gpu = &target.device;
    let (n, d) = if quick { (5000, 256) } else { (20000, 1024) };
    let x = features(n, d, gpu);
    let exact = {
        let v = Preprocess::Paper.apply(features(n, d, &Device::flex()));
        let host = v
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| NmlError::Backend(format!("{e:?}")))?;
        gram_f64_dense(&host, n, d)
    };
    let error = |gram: Tensor<2>| -> Result<f64> {
        let values = gram
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| NmlError::Backend(format!("{e:?}")))?;
        let scale = exact.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        Ok(values.iter().zip(&exact).fold(0.0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()))
            / scale)
    };
    let reps = if quick { 5 } else { 3 };
    let mut gram_kernel = None;
    let t_kernel = median_windowed("gram-kernel", reps, || {
        gram_kernel =
            Some(kernels::affine_gram(x.clone(), Preprocess::Paper.affine_stats(x.clone())));
        sync(gpu);
    });
    let mut gram_composed = None;
    let t_composed = median_windowed("gram-composed", reps, || {
        gram_composed =
            Some(reference::affine_gram(x.clone(), Preprocess::Paper.affine_stats(x.clone())));
        sync(gpu);
    });
    let e_kernel = error(gram_kernel.expect("ran"))?;
    let e_composed = error(gram_composed.expect("ran"))?;
    out.push_str("| operation | WGSL kernel | composed Burn ops | kernel speed-up | max error vs f64, kernel | the same, composed |\n|---|---|---|---|---|---|\n");
    let _ = writeln!(
        out,
        "| Gram of {n} x {d} features with paper-mode preprocessing | {t_kernel:.3} s | {t_composed:.3} s | {:.2}x | {e_kernel:.1e} | {e_composed:.1e} |",
        t_composed / t_kernel
    );
    let images = synthetic_images(6000, 28, 28, 0);
    let indices: Vec<usize> = (0..256).map(|i| i * 23 % images.n()).collect();
    let config = AugmentConfig { pad: 2, flip: true, ..AugmentConfig::default() };
    let on_gpu = DeviceImages::upload(&images, gpu);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut time_batch = |wgsl: bool| {
        kernels::set_wgsl_enabled(wgsl);
        let t =
            median_windowed(if wgsl { "augment-kernel" } else { "augment-composed" }, 20, || {
                let _batch = on_gpu
                    .batch(&indices, config.normalize.as_ref(), Some((&config, &mut rng)))
                    .expect("grey images without statistics map");
                sync(gpu);
            });
        kernels::set_wgsl_enabled(true);
        t
    };
    let (t_aug_kernel, t_aug_composed) = (time_batch(true), time_batch(false));
    let t_host = median_seconds(20, || {
        let pixels =
            image_batch(&images, &indices, config.normalize.as_ref(), Some((&config, &mut rng)))
                .expect("grey images without statistics map");
        let _batch = Tensor::<4>::from_data(TensorData::new(pixels, [256, 1, 28, 28]), gpu);
        sync(gpu);
    });
    let _ = writeln!(
        out,
        "| Augment 256 images of 28 x 28 (crop, pad 2, flip) | {:.2} ms | {:.2} ms | {:.2}x | exact | exact |",
        t_aug_kernel * 1e3,
        t_aug_composed * 1e3,
        t_aug_composed / t_aug_kernel
    );
    let _ = writeln!(
        out,
        "\nThe same augmentation on the host, uploaded per batch: {:.2} ms.\n",
        t_host * 1e3
    );
    Ok(out)
}

/// One epoch of a linear probe and of NMTune (the paper's recipe: batch 64, AdamW, cosine).
fn tune_epochs(target: &ComputeDevice, quick: bool) -> Result<String> {
    let (n, d) = if quick { (5000, 128) } else { (50000, 512) };
    let train = teacher_task(n, d, 10, 0);
    let mut out =
        format!("## One tuning epoch on {n} x {d} features\n\n| method | epoch |\n|---|---|\n");
    for method in [Method::Lp, Method::Nmtune] {
        let config = TuneConfig { epochs: 1, ..TuneConfig::for_method(method) };
        let mut failed = None;
        let t =
            median_windowed(&format!("tune-{}", method.name()), if quick { 3 } else { 1 }, || {
                if let Err(e) = fit(&train, None, &config, &target.device, &mut ()) {
                    failed = Some(e);
                }
            });
        if let Some(e) = failed {
            return Err(e);
        }
        timed(format!("tune-{}-{n}x{d}", method.name()), t);
        let _ = writeln!(out, "| {} | {t:.2} s |", method.name());
    }
    out.push('\n');
    Ok(out)
}

/// Images per second of one pre-training epoch of the quick preset's ResNet on starter MNIST,
/// with and (on WGPU) without the augmentation kernel.
fn pretrain_throughput(target: &ComputeDevice, quick: bool) -> Result<String> {
    let n = if quick { 1024 } else { 4096 };
    let images = read_images(&format!("starter:mnist@0..{n}"))?;
    let StudySuite::Images(suite) = load_suite("quick", None, None)? else {
        return Err(NmlError::Invalid("the quick preset is not an image suite".into()));
    };
    let mut config = suite.pretrain;
    config.epochs = 1;
    let mut out = format!(
        "## Pre-training throughput (quick preset: ResNet 16-32-64 on 14 x 14 images, batch {}, one epoch of {n} MNIST digits)\n\n| augmentation | images/s |\n|---|---|\n",
        config.batch_size
    );
    let variants: Vec<(&str, &str, bool)> = if kernels::uses_wgsl(&target.device) {
        vec![
            ("WGSL kernel on the device", "kernel", true),
            ("composed Burn ops on the device", "composed", false),
        ]
    } else {
        vec![("host loop (the CPU backend's path)", "host", true)]
    };
    for (name, tag, wgsl) in variants {
        kernels::set_wgsl_enabled(wgsl);
        // The first epoch also compiles kernels; the second one is timed.
        let mut seconds = f64::INFINITY;
        for epoch in 0..2 {
            let label = format!("pretrain-{tag}-epoch{}", epoch + 1);
            let trained =
                windowed(&label, || pretrain(&images, &config, None, &target.device, &mut ()));
            let trained = match trained {
                Ok(t) => t,
                Err(e) => {
                    kernels::set_wgsl_enabled(true);
                    return Err(e);
                }
            };
            seconds = trained.history[0].seconds;
        }
        kernels::set_wgsl_enabled(true);
        let _ = writeln!(out, "| {name} | {:.0} |", n as f64 / seconds);
    }
    out.push('\n');
    Ok(out)
}

/// Spectrum and NMTune-epoch time at four sizes, N and D doubling together, with the growth
/// exponent between neighbours: log2 of the time ratio per doubling (N D^2 work gives 3).
fn scaling(target: &ComputeDevice, quick: bool) -> Result<String> {
    let spectrum_sizes: Vec<(usize, usize)> = if quick {
        vec![(1000, 64), (2000, 128), (4000, 256), (8000, 512)]
    } else {
        vec![(5000, 256), (10000, 512), (20000, 1024), (40000, 2048)]
    };
    let tune_sizes: Vec<(usize, usize)> = if quick {
        vec![(1000, 16), (2000, 32), (4000, 64), (8000, 128)]
    } else {
        vec![(6250, 64), (12500, 128), (25000, 256), (50000, 512)]
    };
    let mut out = String::from(
        "## How cost grows (N and D doubling together)\n\n| work | N x D | time | exponent vs previous (log2 of the ratio) |\n|---|---|---|---|\n",
    );
    let mut rows = |name: &str,
                    tag: &str,
                    sizes: &[(usize, usize)],
                    time: &mut dyn FnMut(&str, usize, usize) -> Result<f64>|
     -> Result<()> {
        let mut previous: Option<f64> = None;
        for &(n, d) in sizes {
            let t = time(&format!("scaling-{tag}-{n}x{d}"), n, d)?;
            let growth = previous.map_or("".to_string(), |p| format!("{:.2}", (t / p).log2()));
            let _ = writeln!(out, "| {name} | {n} x {d} | {t:.3} s | {growth} |");
            previous = Some(t);
        }
        Ok(())
    };
    rows(
        "spectrum (paper mode, default precision)",
        "spectrum",
        &spectrum_sizes,
        &mut |label, n, d| {
            let set = synthetic_feature_set(n, d, 0);
            let mut result = Ok(());
            let t = median_windowed(label, repeats(n as f64 * (d * d) as f64 / 2e10), || {
                if let Err(e) =
                    measure(&set, Preprocess::Paper, GramPrecision::Auto, &target.device)
                {
                    result = Err(e);
                }
            });
            result.map(|_| t)
        },
    )?;
    rows("NMTune epoch (hidden 4 D)", "nmtune", &tune_sizes, &mut |label, n, d| {
        let train = teacher_task(n, d, 10, 0);
        let config = TuneConfig { epochs: 1, ..TuneConfig::for_method(Method::Nmtune) };
        let mut result = Ok(());
        let t = median_windowed(label, if n * d > 5_000_000 { 1 } else { 3 }, || {
            if let Err(e) = fit(&train, None, &config, &target.device, &mut ()) {
                result = Err(e);
            }
        });
        result.map(|_| t)
    })?;
    out.push('\n');
    Ok(out)
}

/// Images of `shape` (`[B, C, H, W]`) given by a formula, as `bench/models_torch.py` makes them.
fn formula_images(shape: [usize; 4], device: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let pixels = (0..n).map(|j| (0.5 + 0.5 * (0.05 * j as f64).sin()) as f32).collect();
    Tensor::from_data(TensorData::new(pixels, shape), device)
}

/// Inference of EfficientNet-Lite0 and ResNet-50 at 224 pixels, batch 32, and one training
/// step of ResNet-18 at 32 pixels, batch 128 (forward, backward, AdamW), as
/// `bench/models_torch.py` times them in PyTorch eager; with the process's peak resident memory
/// after each (it only grows, so each row bounds the ones before it).
fn standard_models(target: &ComputeDevice, quick: bool) -> Result<String> {
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::{AdamWConfig, GradientsParams};
    use burn::tensor::Int;
    use nml_core::models::StandardModel;

    let device = &target.device;
    let (infer_batch, train_batch) = if quick { (4, 16) } else { (32, 128) };
    let mut out = format!(
        "## Standard models (inference at 224 px, batch {infer_batch}; ResNet-18 training step at 32 px, batch {train_batch}, AdamW)\n\n| model | images/s | peak RSS so far |\n|---|---|---|\n"
    );
    let peak = || super::peak_memory_mib().map_or("-".to_string(), |m| format!("{m:.0} MiB"));
    for model in [StandardModel::EfficientnetLite0, StandardModel::Resnet50] {
        let encoder = model.init(3, 224, 1000, 0, device);
        let images = formula_images([infer_batch, 3, 224, 224], device);
        let label = format!("models-infer-{}", model.name());
        let seconds = timed(
            label.clone(),
            median_windowed(&label, repeats(2.0), || {
                let logits = encoder.forward(images.clone());
                let _ = logits.into_data();
            }),
        );
        let _ = writeln!(
            out,
            "| {} inference | {:.1} | {} |",
            model.name(),
            infer_batch as f64 / seconds,
            peak()
        );
    }
    let autodiff = device.clone().autodiff();
    let mut model = StandardModel::Resnet18.init(3, 32, 10, 0, &autodiff);
    let mut optimizer = AdamWConfig::new().init();
    let images = formula_images([train_batch, 3, 32, 32], &autodiff);
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new((0..train_batch as i64).map(|i| i % 10).collect::<Vec<_>>(), [train_batch]),
        &autodiff,
    );
    let loss_fn = CrossEntropyLossConfig::new().init(&autodiff);
    let label = "models-train-resnet18".to_string();
    let seconds = timed(
        label.clone(),
        median_windowed(&label, repeats(2.0), || {
            let loss = loss_fn.forward(model.forward(images.clone()), labels.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-3, model.clone(), grads);
            sync(&autodiff);
        }),
    );
    let _ = writeln!(
        out,
        "| resnet18 training step | {:.1} | {} |",
        train_batch as f64 / seconds,
        peak()
    );
    out.push('\n');
    Ok(out)
}

/// The streaming loader's decode + augment throughput on a folder of JPEGs: torchvision's
/// training transform (RandomResizedCrop to 224, flip, ImageNet normalisation), batch 64, a
/// worker per core, as `bench/loader_torch.py` times `ImageFolder` + `DataLoader` on the same
/// files. The files are read once before timing, so both read them from the page cache.
fn loader_throughput(
    target: &ComputeDevice,
    quick: bool,
    folder: Option<&std::path::Path>,
) -> Result<String> {
    use nml_core::ImageSource;
    use nml_core::data::{BatchTransform, LoaderConfig, Normalize, ResizedCrop};
    use nml_core::train::{Plan, Shuffle};

    let _ = target;
    let n = if quick { 64 } else { 512 };
    let temporary = std::env::temp_dir().join(format!("nml-bench-jpegs-{}", std::process::id()));
    let dir = folder.unwrap_or(&temporary);
    if !dir.join("class00").is_dir() {
        let photos = std::path::Path::new("data/fetched/skimage-photos");
        if !photos.is_dir() {
            return Ok("## Image loader\n\nSkipped: needs the sample photos that `scripts/fetch-data` brings (data/fetched/skimage-photos).\n\n".into());
        }
        nml_core::bench::jpeg_folder(photos, dir, n, 8)?;
    }
    let streamed = dir.display().to_string().parse::<ImageSource>()?.streamed()?;
    let normalize = Some(Normalize::imagenet());
    let transform = BatchTransform {
        image_size: 224,
        augment: Some(AugmentConfig {
            pad: 0,
            flip: true,
            normalize: normalize.clone(),
            resized_crop: Some(ResizedCrop::default()),
        }),
        normalize,
    };
    let loader = LoaderConfig { prefetch: 4, ..LoaderConfig::default() };
    let plan = Plan::new(streamed.n(), 1, 64, 0.0, Shuffle::PerEpoch { seed: 0 });
    let label = "loader-jpeg-224".to_string();
    let mut failure = None;
    let seconds = timed(
        label.clone(),
        median_windowed(&label, repeats(10.0), || {
            let order = plan.clone();
            let epoch = || -> Result<()> {
                let mut stream = streamed.stream(
                    1..=1,
                    move |e| order.epoch_batches(e),
                    transform.clone(),
                    0,
                    loader,
                )?;
                for batch in plan.epoch_batches(1)? {
                    stream.next(&batch)?;
                }
                Ok(())
            };
            if let Err(e) = epoch() {
                failure.get_or_insert(e);
            }
        }),
    );
    if folder.is_none() {
        let _ = std::fs::remove_dir_all(&temporary);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let peak = super::peak_memory_mib().map_or("-".to_string(), |m| format!("{m:.0} MiB"));
    Ok(format!(
        "## Image loader (decode + RandomResizedCrop 224 + flip + normalise, batch 64)\n\n| files | workers | images/s | peak RSS so far |\n|---|---|---|---|\n| {} JPEGs of 500x375 | {} | {:.1} | {peak} |\n\n",
        streamed.n(),
        loader.workers,
        streamed.n() as f64 / seconds,
    ))
}

/// Text `i` of the text section: 8 to 47 words from a fixed list, by a formula
/// `bench/minilm_torch.py` shares, so both time the same texts.
fn generated_text(i: usize) -> String {
    const WORDS: &str = "the of and to in is was for on that with as by at from it an be this which or are \
        noise label model data feature training learning network image text task domain \
        transfer spectrum value large small clean shift test accuracy foundation pretrained";
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    (0..8 + (i * 5) % 40)
        .map(|j| words[(i * 7 + j * 13) % words.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// all-MiniLM-L6-v2 embedding generated texts as `nml embed` does (batch 32, longest first),
/// as `bench/minilm_torch.py` times its PyTorch forward; with the peak resident memory.
fn sentence_encoder(target: &ComputeDevice, quick: bool) -> Result<String> {
    use nml_core::models::SentenceEncoder;
    let dir = std::path::Path::new("data/fetched/all-minilm-l6-v2");
    if !dir.is_dir() {
        return Ok("## Sentence encoder\n\nSkipped: needs all-MiniLM-L6-v2, which `scripts/fetch-data` brings (data/fetched/all-minilm-l6-v2).\n\n".into());
    }
    let device = &target.device;
    let encoder = SentenceEncoder::read_dir(dir, device)?;
    let n = if quick { 64 } else { 512 };
    let texts: Vec<String> = (0..n).map(generated_text).collect();
    let label = format!("text-minilm-{n}");
    let mut failure = None;
    let seconds = timed(
        label.clone(),
        median_windowed(&label, repeats(10.0), || {
            if let Err(e) = encoder.embed(&texts, 32, device, &mut |_| {}) {
                failure.get_or_insert(e);
            }
        }),
    );
    if let Some(e) = failure {
        return Err(e);
    }
    let peak = super::peak_memory_mib().map_or("-".to_string(), |m| format!("{m:.0} MiB"));
    Ok(format!(
        "## Sentence encoder (all-MiniLM-L6-v2, batch 32)\n\n| texts | sentences/s | peak RSS so far |\n|---|---|---|\n| {n} generated, 8-47 words | {:.1} | {peak} |\n\n",
        n as f64 / seconds
    ))
}
