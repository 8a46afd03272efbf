use burn::tensor::{Device, Tensor, TensorData};
use faer::Mat;
use proptest::prelude::*;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::readback::floats;
use eigen::eigenvalues_desc;
use gram::{gram_f32_blocks, staged_gram};
use verify::{model_accepts, perturbation_bound};

/// A random orthonormal `rows x cols` matrix (cols <= rows), from the QR of a Gaussian-like one.
fn orthonormal(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Mat<f64> {
    let g = Mat::<f64>::from_fn(rows, cols, |_, _| rng.random::<f64>() - 0.5);
    g.qr().compute_thin_Q()
}

/// `U diag(s) V^T` rounded to f32, row-major, with U n x r and V d x r orthonormal.
fn with_spectrum(n: usize, d: usize, s: &[f64], seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let r = s.len();
    let u = orthonormal(n, r, &mut rng);
    let v = orthonormal(d, r, &mut rng);
    let mut out = vec![0f32; n * d];
    for i in 0..n {
        for j in 0..d {
            out[i * d + j] = (0..r).map(|k| u[(i, k)] * s[k] * v[(j, k)]).sum::<f64>() as f32;
        }
    }
    out
}

/// The reference: f64 SVD of the f32 matrix.
fn reference(x: &[f32], n: usize, d: usize) -> Vec<f64> {
    let m = Mat::<f64>::from_fn(n, d, |i, j| f64::from(x[i * d + j]));
    let mut s = m.singular_values().unwrap();
    s.sort_by(|a, b| b.total_cmp(a));
    s
}

fn tensor(x: &[f32], n: usize, d: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(x.to_vec(), [n, d]), device)
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

/// Checks the path `precision` names on the CPU backend (`Auto` there is the f32-blocks Gram
/// with its accuracy checks and fallback) against the f64 reference.
fn assert_close_to_reference(
    x: &[f32],
    n: usize,
    d: usize,
    precision: GramPrecision,
) -> &'static str {
    let device = Device::flex();
    let (s, method) =
        blocking(by_precision(tensor(x, n, d, &device), Preprocess::Raw, precision)).unwrap();
    let r = reference(x, n, d);
    assert_eq!(s.len(), n.min(d));
    let (sve, sve_ref) = (metrics::sve(&s), metrics::sve(&r));
    let (lsvr, lsvr_ref) = (metrics::lsvr_ratio(&s), metrics::lsvr_ratio(&r));
    assert!(rel(sve, sve_ref) < 1e-4, "{method}: SVE {sve} vs {sve_ref}");
    assert!(rel(lsvr, lsvr_ref) < 1e-4, "{method}: LSVR {lsvr} vs {lsvr_ref}");
    assert!(rel(s[0], r[0]) < 1e-5, "{method}: s1 {} vs {}", s[0], r[0]);
    method
}

#[test]
fn steep_spectrum_meets_the_guarantee() {
    // Seven orders of magnitude: far below the f32 Gram's floor, so auto must notice.
    let (n, d, r) = (600, 80, 80);
    let s: Vec<f64> = (0..r).map(|i| 10f64.powf(-7.0 * i as f64 / (r - 1) as f64)).collect();
    let x = with_spectrum(n, d, &s, 1);
    assert_eq!(assert_close_to_reference(&x, n, d, GramPrecision::Auto), "gram-f64-host");
    assert_close_to_reference(&x, n, d, GramPrecision::Exact);
    // The fast path alone cannot: this is what the check guards against.
    let device = Device::flex();
    let (fast, _) = singular_values(tensor(&x, n, d, &device), GramPrecision::Fast).unwrap();
    let r = reference(&x, n, d);
    assert!(rel(metrics::sve(&fast), metrics::sve(&r)) > 1e-4);
}

#[test]
fn gentle_spectrum_takes_the_fast_path() {
    let (n, d) = (2000, 64);
    let s: Vec<f64> = (0..d).map(|i| 10.0 / (1.0 + i as f64 / 8.0)).collect();
    let x = with_spectrum(n, d, &s, 2);
    assert_eq!(assert_close_to_reference(&x, n, d, GramPrecision::Auto), "gram-f32-blocks-host");
}

#[test]
fn wide_matrices_use_the_small_gram() {
    let (n, d) = (40, 300);
    let s: Vec<f64> = (0..n).map(|i| 0.9f64.powi(i as i32)).collect();
    let x = with_spectrum(n, d, &s, 3);
    assert_close_to_reference(&x, n, d, GramPrecision::Auto);
    let device = Device::flex();
    let (values, _) = singular_values(tensor(&x, n, d, &device), GramPrecision::Exact).unwrap();
    for (a, b) in values.iter().zip(&s) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn paper_mode_matches_an_f64_reference() {
    let (n, d) = (300, 24);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x: Vec<f32> = (0..n * d).map(|_| rng.random::<f32>() * 2.0 + 0.1).collect();
    // Reference preprocessing in f64: row L2-normalise, then subtract each row's mean.
    let mut pre = vec![0f32; n * d];
    for i in 0..n {
        let row: Vec<f64> = x[i * d..(i + 1) * d].iter().map(|&v| f64::from(v)).collect();
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        let unit: Vec<f64> = row.iter().map(|v| v / norm).collect();
        let mean = unit.iter().sum::<f64>() / d as f64;
        for j in 0..d {
            pre[i * d + j] = (unit[j] - mean) as f32;
        }
    }
    let r = reference(&pre, n, d);
    let device = Device::flex();
    let report =
        measure_tensor(tensor(&x, n, d, &device), "x", Preprocess::Paper, GramPrecision::Auto)
            .unwrap();
    assert_eq!(report.method, "gram-f32-blocks-host");
    // On the checked f32 path the ones direction is known to be null, so it does not force the
    // exact path, and its singular value is reported as exactly zero.
    let (fast_values, method) =
        blocking(by_precision(tensor(&x, n, d, &device), Preprocess::Paper, GramPrecision::Auto))
            .unwrap();
    assert_eq!(method, "gram-f32-blocks-host");
    assert_eq!(*fast_values.last().unwrap(), 0.0);
    assert!(rel(metrics::sve(&fast_values), metrics::sve(&r)) < 1e-4);
    assert!(
        rel(report.metrics.sve, metrics::sve(&r)) < 1e-4,
        "{} vs {}",
        report.metrics.sve,
        metrics::sve(&r)
    );
    assert!(rel(report.metrics.lsvr_ratio, metrics::lsvr_ratio(&r)) < 1e-4);
    assert_eq!(report.mode, Preprocess::Paper);
    assert!((report.metrics.rankme - report.metrics.sve.exp()).abs() < 1e-9);
    assert!((report.metrics.lsvr_neglog + report.metrics.lsvr_ratio.ln()).abs() < 1e-12);
}

/// The benchmark's features in the paper mode: the modelled rounding bound rejects the
/// f32-blocks Gram, the measured bound accepts it, and the result keeps the guarantee.
#[test]
fn measured_bound_accepts_what_the_model_rejects() {
    let (n, d) = (8000, 512);
    let x = crate::bench::synthetic_features(n, d, 0);
    let device = Device::flex();
    let (exact, _) =
        blocking(by_precision(tensor(&x, n, d, &device), Preprocess::Paper, GramPrecision::Exact))
            .unwrap();
    let (auto, method) =
        blocking(by_precision(tensor(&x, n, d, &device), Preprocess::Paper, GramPrecision::Auto))
            .unwrap();
    assert_eq!(method, "gram-f32-blocks-host");
    assert!(rel(metrics::sve(&auto), metrics::sve(&exact)) < 1e-4);
    assert!(rel(metrics::lsvr_ratio(&auto), metrics::lsvr_ratio(&exact)) < 1e-4);
    // What the model alone would have said, on the exact eigenvalues (the null one left out).
    let pre = blocking(floats(Preprocess::Paper.apply(tensor(&x, n, d, &device)))).unwrap();
    let max_diag = (0..d)
        .map(|j| (0..n).map(|i| f64::from(pre[i * d + j]).powi(2)).sum::<f64>())
        .fold(0.0, f64::max);
    let eig: Vec<f64> = exact[..d - 1].iter().map(|s| s * s).collect();
    assert!(!model_accepts(&eig, max_diag), "the model accepts this matrix already");
}

/// A feature set on the host is read where it lies, not through a tensor; the report is the
/// one the tensor route gives, in every mode and precision, for tall and wide matrices.
#[test]
fn feature_sets_on_the_host_match_the_tensor_route() {
    let device = Device::flex();
    for (n, d) in [(1500usize, 40usize), (30, 200)] {
        let x = with_spectrum(n, d, &[5.0, 2.0, 1.0, 0.3, 1e-3], 21);
        let set = FeatureSet::new("x", x.clone(), d, vec![0; n], None).unwrap();
        for mode in [Preprocess::Paper, Preprocess::Centered, Preprocess::Raw] {
            for precision in [GramPrecision::Auto, GramPrecision::Exact, GramPrecision::Fast] {
                let from_set = measure(&set, mode, precision, &device).unwrap();
                let from_tensor =
                    measure_tensor(tensor(&x, n, d, &device), "x", mode, precision).unwrap();
                assert_eq!(from_set, from_tensor, "{n} x {d}, {mode:?}, {precision:?}");
            }
        }
    }
}

/// A Gram formed a block of rows at a time (several blocks and a short last one) is the whole
/// matrix's.
#[test]
fn staged_gram_sums_its_blocks_to_the_whole() {
    let (n, d) = (1000, 70);
    let x = with_spectrum(n, d, &[5.0, 2.0, 1.0, 0.3, 0.05], 23);
    let mut devices = vec![Device::flex()];
    devices.extend(crate::test_support::wgpu_or_skip(
        "spectrum::staged_gram_sums_its_blocks_to_the_whole",
    ));
    let exact = gram_f64(&x, n, d);
    let scale = (0..d).map(|j| exact[(j, j)]).fold(0.0, f64::max);
    for device in &devices {
        let staged = blocking(staged_gram(&x, n, d, device, 97)).unwrap();
        let error = (0..d)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| (staged[(i, j)] - exact[(i, j)]).abs())
            .fold(0.0, f64::max);
        assert!(
            error < 1e-6 * scale,
            "{device:?}: off by {:e} of the largest entry",
            error / scale
        );
    }
}

/// On a GPU a feature set goes through the staged Gram; its report matches the exact one.
#[test]
fn feature_sets_on_a_gpu_meet_the_guarantee() {
    let Some(gpu) =
        crate::test_support::wgpu_or_skip("spectrum::feature_sets_on_a_gpu_meet_the_guarantee")
    else {
        return;
    };
    let (n, d) = (3000, 96);
    let s: Vec<f64> = (0..d).map(|i| 5.0 / (1.0 + i as f64 / 6.0)).collect();
    let set = FeatureSet::new("x", with_spectrum(n, d, &s, 6), d, vec![0; n], None).unwrap();
    for mode in [Preprocess::Paper, Preprocess::Centered, Preprocess::Raw] {
        let exact = measure(&set, mode, GramPrecision::Exact, &gpu).unwrap();
        for precision in [GramPrecision::Fast, GramPrecision::Auto] {
            let report = measure(&set, mode, precision, &gpu).unwrap();
            assert_eq!(report.singular_values.len(), d);
            assert!(
                rel(report.metrics.sve, exact.metrics.sve) < 1e-4,
                "{mode:?} {precision:?}: SVE {} vs {}",
                report.metrics.sve,
                exact.metrics.sve
            );
            assert!(
                rel(report.metrics.lsvr_ratio, exact.metrics.lsvr_ratio) < 1e-4,
                "{mode:?} {precision:?}"
            );
        }
    }
}

#[test]
fn centered_mode_removes_the_mean_direction() {
    // Every row is the same vector plus small noise: raw has one huge direction, centred does not.
    let (n, d) = (200, 10);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x: Vec<f32> =
        (0..n * d).map(|i| 5.0 + (i % d) as f32 + rng.random::<f32>() * 0.1).collect();
    let device = Device::flex();
    let raw = measure_tensor(tensor(&x, n, d, &device), "x", Preprocess::Raw, GramPrecision::Auto)
        .unwrap();
    let centred =
        measure_tensor(tensor(&x, n, d, &device), "x", Preprocess::Centered, GramPrecision::Auto)
            .unwrap();
    assert!(raw.metrics.lsvr_ratio > 0.9, "{}", raw.metrics.lsvr_ratio);
    assert!(centred.metrics.lsvr_ratio < 0.3, "{}", centred.metrics.lsvr_ratio);
}

#[test]
fn orthogonal_columns_give_their_norms() {
    // Closed form: columns e_j * c_j have singular values |c_j|.
    let (n, d) = (6, 4);
    let norms = [4.0f32, 3.0, 2.0, 0.5];
    let mut x = vec![0f32; n * d];
    for j in 0..d {
        x[j * d + j] = norms[j];
    }
    let device = Device::flex();
    let (s, _) = singular_values(tensor(&x, n, d, &device), GramPrecision::Auto).unwrap();
    for (a, b) in s.iter().zip(norms) {
        assert!((a - f64::from(b)).abs() < 1e-6);
    }
}

#[test]
fn wgpu_agrees_with_cpu() {
    assert!(
        crate::device::is_host(&Device::flex())
            && crate::device::is_host(&Device::flex().autodiff())
    );
    let Some(gpu) = crate::test_support::wgpu_or_skip("spectrum::wgpu_agrees_with_cpu") else {
        return;
    };
    assert!(!crate::device::is_host(&gpu));
    let (n, d) = (3000, 96);
    let s: Vec<f64> = (0..d).map(|i| 5.0 / (1.0 + i as f64 / 6.0)).collect();
    let x = with_spectrum(n, d, &s, 6);
    let r = reference(&x, n, d);
    for mode in [Preprocess::Raw, Preprocess::Paper, Preprocess::Centered] {
        let cpu = measure_tensor(tensor(&x, n, d, &Device::flex()), "x", mode, GramPrecision::Fast)
            .unwrap();
        let on_gpu =
            measure_tensor(tensor(&x, n, d, &gpu), "x", mode, GramPrecision::Fast).unwrap();
        assert!(
            rel(on_gpu.metrics.sve, cpu.metrics.sve) < 1e-4,
            "{mode:?}: {} vs {}",
            on_gpu.metrics.sve,
            cpu.metrics.sve
        );
        assert!(rel(on_gpu.metrics.lsvr_ratio, cpu.metrics.lsvr_ratio) < 1e-4, "{mode:?}");
    }
    let (gpu_values, _) = singular_values(tensor(&x, n, d, &gpu), GramPrecision::Auto).unwrap();
    assert!(rel(metrics::sve(&gpu_values), metrics::sve(&r)) < 1e-4);
    // The guarantee holds on the GPU path too, falling back where it must.
    let steep: Vec<f64> = (0..40).map(|i| 10f64.powf(-6.0 * i as f64 / 39.0)).collect();
    let x = with_spectrum(400, 40, &steep, 7);
    let (values, _) = singular_values(tensor(&x, 400, 40, &gpu), GramPrecision::Auto).unwrap();
    let r = reference(&x, 400, 40);
    assert!(rel(metrics::sve(&values), metrics::sve(&r)) < 1e-4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn metrics_ignore_scale_and_row_order(seed in 0u64..10_000, scale in 0.01f32..100.0, n in 8usize..40, d in 3usize..12) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x: Vec<f32> = (0..n * d).map(|_| rng.random::<f32>() - 0.3).collect();
        let scaled: Vec<f32> = x.iter().map(|v| v * scale).collect();
        let mut perm: Vec<usize> = (0..n).collect();
        perm.reverse();
        perm.swap(0, n / 2);
        let permuted: Vec<f32> = perm.iter().flat_map(|&i| x[i * d..(i + 1) * d].to_vec()).collect();
        let device = Device::flex();
        for mode in [Preprocess::Raw, Preprocess::Centered, Preprocess::Paper] {
            let base = measure_tensor(tensor(&x, n, d, &device), "x", mode, GramPrecision::Auto).unwrap();
            for other in [&scaled, &permuted] {
                let m = measure_tensor(tensor(other, n, d, &device), "x", mode, GramPrecision::Auto).unwrap();
                prop_assert!(rel(m.metrics.sve, base.metrics.sve) < 1e-4, "{:?} SVE {} vs {}", mode, m.metrics.sve, base.metrics.sve);
                prop_assert!(rel(m.metrics.lsvr_ratio, base.metrics.lsvr_ratio) < 1e-4, "{:?} LSVR {} vs {}", mode, m.metrics.lsvr_ratio, base.metrics.lsvr_ratio);
            }
        }
    }
}

/// Prints, for the benchmark's features, the Gram error's true spectral norm, the measured and
/// modelled bounds, and the largest eigenvalue shift the 1e-5 tolerance allows.
#[test]
#[ignore = "diagnostic: cargo test -p nml-core --lib bound_diagnostics -- --ignored --nocapture"]
fn bound_diagnostics() {
    for (n, d) in [(20000, 1024), (40000, 2048), (50000, 2048)] {
        let x = crate::bench::synthetic_features(n, d, 0);
        let device = Device::flex();
        let pre = blocking(floats(Preprocess::Paper.apply(tensor(&x, n, d, &device)))).unwrap();
        let exact = gram_f64(&pre, n, d);
        let fast = gram_f32_blocks(&pre, n, d);
        let error = &fast - &exact;
        let true_norm = eigenvalues_desc(error.as_ref()).iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let started = std::time::Instant::now();
        let measured = gram_error_bound(&pre, n, d, &fast);
        let check_seconds = started.elapsed().as_secs_f64();
        let max_diag = (0..d).map(|j| exact[(j, j)]).fold(0.0, f64::max);
        let modelled = 16.0 * f64::from(f32::EPSILON) * max_diag;
        let mut eig = eigenvalues_desc(exact.as_ref());
        eig.pop();
        let (mut lo, mut hi) = (0.0, modelled * 100.0);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if perturbation_bound(&eig, mid) > 1e-5 { hi = mid } else { lo = mid }
        }
        eprintln!(
            "{n} x {d}: max diag {max_diag:.3e}, true {true_norm:.3e}, measured {measured:.3e} in {check_seconds:.3} s, modelled {modelled:.3e}, allowed {lo:.3e}, smallest eig {:.3e}, bound at measured {:.3e}, at true {:.3e}",
            eig.last().unwrap(),
            perturbation_bound(&eig, measured),
            perturbation_bound(&eig, true_norm),
        );
    }
}

/// The issue-sized case on a GPU: SVE and LSVR of a 50000 x 2048 feature set (410 MB in f32,
/// more than llvmpipe allocates in one buffer, so it is uploaded in blocks) from the kernel's
/// Gram against the exact f64 path. `cargo test -p nml-core --lib issue_sized -- --ignored
/// --nocapture` (minutes on llvmpipe).
#[test]
#[ignore]
fn issue_sized_gram_on_wgpu() {
    let Some(gpu) = crate::test_support::wgpu_or_skip("spectrum::issue_sized_gram_on_wgpu") else {
        return;
    };
    let set = crate::bench::synthetic_feature_set(50_000, 2048, 0);
    let timed = |precision| {
        let started = std::time::Instant::now();
        let report = measure(&set, Preprocess::Paper, precision, &gpu).unwrap();
        (report, started.elapsed().as_secs_f64())
    };
    let (exact, exact_seconds) = timed(GramPrecision::Exact);
    for precision in [GramPrecision::Fast, GramPrecision::Auto] {
        let (report, seconds) = timed(precision);
        let sve = (report.metrics.sve - exact.metrics.sve).abs() / exact.metrics.sve;
        let lsvr =
            (report.metrics.lsvr_ratio - exact.metrics.lsvr_ratio).abs() / exact.metrics.lsvr_ratio;
        eprintln!(
            "{precision:?} ({}): {seconds:.1} s, SVE within {sve:.1e}, LSVR within {lsvr:.1e} (exact path {exact_seconds:.1} s)",
            report.method
        );
        assert_eq!(report.method, "gram-f32-device");
        assert!(sve < 1e-4 && lsvr < 1e-4, "{precision:?}: SVE {sve:e}, LSVR {lsvr:e}");
    }
}

/// The metrics against a numpy transcription of their definitions (and of alpha-ReQ's authors'
/// fit), from `scripts/make-spectrum-metric-fixtures`: of the same singular values to 1e-9,
/// and measured from the features in the paper mode to 1e-5 (exact) and 1e-4 (auto).
#[test]
fn metrics_match_a_numpy_transcription() {
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("testdata/metric-fixtures.json")).unwrap();
    let close = |got: &SpectralMetrics, want: &serde_json::Value, tol: f64, case: &str| {
        let pairs = [
            ("sve", Some(got.sve)),
            ("lsvr_ratio", Some(got.lsvr_ratio)),
            ("lsvr_neglog", Some(got.lsvr_neglog)),
            ("rankme", Some(got.rankme)),
            ("alpha_req", got.alpha_req),
            ("nesum", got.nesum),
            ("condition_number", got.condition_number),
        ];
        for (key, value) in pairs {
            match (value, want[key].as_f64()) {
                (Some(v), Some(w)) => assert!(rel(v, w) < tol, "{case}: {key} {v} vs numpy {w}"),
                (None, None) => {}
                (v, w) => panic!("{case}: {key} {v:?} vs numpy {w:?}"),
            }
        }
        assert_eq!(got.retained as u64, want["retained"].as_u64().unwrap(), "{case}");
    };
    let cases = fixtures["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (n, d) = (case["n"].as_u64().unwrap() as usize, case["d"].as_u64().unwrap() as usize);
        let s: Vec<f64> = case["singular_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        close(&SpectralMetrics::of(&s, n, d), &case["expected"], 1e-9, name);
        if let Some(features) = case["features"].as_array() {
            let x: Vec<f32> = features.iter().map(|v| v.as_f64().unwrap() as f32).collect();
            for (precision, tol) in [(GramPrecision::Exact, 1e-5), (GramPrecision::Auto, 1e-4)] {
                let report =
                    measure_matrix(name, &x, n, d, Preprocess::Paper, precision, &Device::flex())
                        .unwrap();
                close(&report.metrics, &case["expected"], tol, name);
            }
        }
    }
}
