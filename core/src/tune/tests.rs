use std::path::PathBuf;

use burn::tensor::Device;

use super::*;
use crate::data::ImageSet;

/// The scikit-learn 8x8 digits from the starter pack, as 64 pixel features, split 2:1.
fn digits() -> (FeatureSet, FeatureSet) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/starter");
    let images = ImageSet::read_idx(
        &dir.join("sklearn-digits-images-idx3-ubyte.gz"),
        &dir.join("sklearn-digits-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let set = images.pixel_features().unwrap();
    let (train, test) = set.stratified_split(1.0 / 3.0, 0).unwrap();
    (train, test)
}

fn quick(method: Method, epochs: usize) -> TuneConfig {
    TuneConfig { epochs, ..TuneConfig::for_method(method) }
}

#[test]
fn linear_probe_learns_real_digits() {
    let (train, test) = digits();
    let out = tune(&train, &test, &[], &quick(Method::Lp, 10), &Device::flex(), &mut ()).unwrap();
    assert!(out.report.accuracy > 0.9, "LP accuracy {}", out.report.accuracy);
    let h = &out.report.history;
    assert!(h.last().unwrap().ce < h[0].ce, "loss did not fall: {h:?}");
    assert_eq!(out.report.spectra[0].before, out.report.spectra[0].after, "LP does not transform");
}

#[test]
fn nmtune_learns_and_reports_everything() {
    let (train, test) = digits();
    let ood = vec![("shifted".to_string(), {
        // Same digits with the image flipped left-right: a real, labelled domain shift.
        let mut values = test.features().to_vec();
        for i in 0..test.n() {
            for y in 0..8 {
                values[i * 64 + y * 8..i * 64 + y * 8 + 8].reverse();
            }
        }
        test.with_features("shifted", values, 64).unwrap()
    })];
    let out =
        tune(&train, &test, &ood, &quick(Method::Nmtune, 6), &Device::flex(), &mut ()).unwrap();
    let r = &out.report;
    assert!(r.accuracy > 0.85, "NMTune accuracy {}", r.accuracy);
    assert!(r.ood["shifted"] < r.accuracy, "flipped digits should be harder: {:?}", r.ood);
    assert_eq!(r.history.len(), 6);
    let first = &r.history[0];
    assert!(first.mse > 0.0 && first.cov > 0.0 && first.svd > 0.0, "{first:?}");
    assert_eq!(r.spectra.len(), 2);
    assert_eq!((r.spectra[0].role, r.spectra[1].role), (Role::Id, Role::Ood));
    assert_ne!(r.spectra[0].before, r.spectra[0].after);
}

#[test]
fn same_seed_same_result() {
    let (train, test) = digits();
    let config = quick(Method::Mlp, 2);
    let a = tune(&train, &test, &[], &config, &Device::flex(), &mut ()).unwrap().report;
    let b = tune(&train, &test, &[], &config, &Device::flex(), &mut ()).unwrap().report;
    assert_eq!(a.history, b.history);
    assert_eq!(a.accuracy, b.accuracy);
    let c = tune(&train, &test, &[], &TuneConfig { seed: 1, ..config }, &Device::flex(), &mut ())
        .unwrap()
        .report;
    assert_ne!(a.history, c.history);
}

#[test]
fn early_stopping_keeps_the_best_epoch() {
    let (train, test) = digits();
    let config = TuneConfig { val_fraction: 0.2, patience: 2, ..quick(Method::Lp, 40) };
    let r = tune(&train, &test, &[], &config, &Device::flex(), &mut ()).unwrap().report;
    let best = r.best_epoch.unwrap();
    let accs: Vec<f64> = r.history.iter().map(|e| e.val_accuracy.unwrap()).collect();
    let max = accs.iter().cloned().fold(0.0, f64::max);
    assert_eq!(accs[best - 1], max);
    assert!(accs[..best - 1].iter().all(|&a| a < max), "best is the first epoch reaching the max");
    assert!(r.epochs_run == 40 || r.epochs_run == best + 2, "{} {}", r.epochs_run, best);
    assert_eq!(r.train_samples + r.val_samples, train.n());
}

#[test]
fn data_fraction_trains_on_that_share() {
    let (train, test) = digits();
    let config = TuneConfig { data_fraction: 0.1, ..quick(Method::Lp, 2) };
    let r = tune(&train, &test, &[], &config, &Device::flex(), &mut ()).unwrap().report;
    assert!((r.train_samples as f64 - 0.1 * train.n() as f64).abs() <= 10.0, "{}", r.train_samples);
}

#[test]
fn saved_head_predicts_the_same() {
    let (train, test) = digits();
    let device = Device::flex();
    let out = tune(&train, &test, &[], &quick(Method::Nmtune, 1), &device, &mut ()).unwrap();
    let (trained, trained_shape) = (out.head.unwrap(), out.head_config.unwrap());
    let bytes = head_to_bytes(&trained, &trained_shape, &out.report.config).unwrap();
    let (head, shape, config) = head_from_bytes(&bytes, "head.safetensors", &device).unwrap();
    assert_eq!(shape, trained_shape);
    assert_eq!(config, out.report.config);
    let before = predict(&trained, test.features(), test.d(), &device).unwrap();
    let after = predict(&head, test.features(), test.d(), &device).unwrap();
    assert_eq!(before, after);
    assert!(head_from_bytes(b"junk", "h", &device).unwrap_err().to_string().contains("h: "));
}

/// The k-NN probe through `tune`: no head, accuracies in and out of domain, unchanged spectra.
#[test]
fn the_knn_probe_reports_like_a_head() {
    let (train, test) = digits();
    let device = Device::flex();
    let config = TuneConfig::for_method(Method::Knn);
    let ood = [("again".to_string(), test.clone())];
    let out = tune(&train, &test, &ood, &config, &device, &mut ()).unwrap();
    assert!(out.head.is_none() && out.head_config.is_none() && out.transformed_spectra.is_empty());
    assert!(out.report.accuracy > 0.9, "{}", out.report.accuracy);
    assert_eq!(out.report.ood["again"], out.report.accuracy);
    assert_eq!((out.report.epochs_run, out.report.method), (0, Method::Knn));
    assert!(out.report.spectra.iter().all(|s| s.before == s.after));
}

#[test]
fn incompatible_sets_are_refused_by_name() {
    let (train, test) = digits();
    let narrow = FeatureSet::new("narrow.npy", vec![0.0; 10], 5, vec![0, 1], None).unwrap();
    let err =
        tune(&train, &narrow, &[], &quick(Method::Lp, 1), &Device::flex(), &mut ()).err().unwrap();
    assert!(err.to_string().contains("narrow.npy: features have 5 dimensions"), "{err}");
    let alien = FeatureSet::new("alien", vec![0.0; 128], 64, vec![0, 12], None).unwrap();
    let err = tune(
        &train,
        &test,
        &[("x".into(), alien)],
        &quick(Method::Lp, 1),
        &Device::flex(),
        &mut (),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("label 12 at index 1"), "{err}");
}

#[test]
fn selection_tries_the_grid_and_keeps_the_best() {
    let (train, test) = digits();
    // No val_fraction: select holds out its own stratified split.
    let config = TuneConfig { select: true, ..quick(Method::Nmtune, 1) };
    let r = tune(&train, &test, &[], &config, &Device::flex(), &mut ()).unwrap().report;
    assert_eq!(r.config.val_fraction, SELECT_VAL_FRACTION);
    assert!(r.val_samples > 0 && r.val_samples < r.train_samples, "{}", r.val_samples);
    assert_eq!(r.selection.len(), grid(&config).len());
    let best = r.selection.iter().map(|t| t.val_accuracy).fold(0.0, f64::max);
    let chosen = r.selection.iter().find(|t| t.val_accuracy == best).unwrap();
    assert_eq!(
        (chosen.w_svd, chosen.hidden_mult, chosen.residual_scale_init, chosen.lr),
        (r.config.w_svd, r.config.hidden_mult, r.config.residual_scale_init, r.config.lr)
    );
}

/// A residual scale started at 0 makes the untrained MLP head a linear probe on the features.
#[test]
fn a_zero_residual_scale_starts_as_the_probe() {
    let (train, _) = digits();
    let device = Device::flex();
    let head = FeatureHeadConfig::new(train.d(), train.num_classes())
        .with_hidden(Some(2 * train.d()))
        .with_scale_init(0.0)
        .init(0, &device);
    let f = train.features_tensor(&device);
    let z = head.transform(f.clone());
    let gap = (z - f).abs().max().into_scalar::<f32>();
    assert_eq!(gap, 0.0);
}

#[test]
fn wgpu_agrees_with_cpu() {
    let Some(gpu) = crate::test_support::wgpu_or_skip("tune::wgpu_agrees_with_cpu") else {
        return;
    };
    let (train, test) = digits();
    for method in [Method::Lp, Method::Nmtune] {
        let config = quick(method, 2);
        let cpu = tune(&train, &test, &[], &config, &Device::flex(), &mut ()).unwrap().report;
        let on_gpu = tune(&train, &test, &[], &config, &gpu, &mut ()).unwrap().report;
        for (a, b) in cpu.history.iter().zip(&on_gpu.history) {
            assert!(
                (a.loss - b.loss).abs() < 1e-3 * a.loss.abs().max(1.0),
                "{method:?} loss {} vs {}",
                a.loss,
                b.loss
            );
        }
        assert!(
            (cpu.accuracy - on_gpu.accuracy).abs() <= 0.01,
            "{method:?} {} vs {}",
            cpu.accuracy,
            on_gpu.accuracy
        );
    }
}

/// The validation score is the head's accuracy and its mean cross-entropy as Burn's loss
/// computes it; a tie of accuracy goes to the lower loss.
#[test]
fn validation_scores_accuracy_then_cross_entropy() {
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::tensor::{Int, Tensor, TensorData};
    let (train, test) = digits();
    let device = Device::flex();
    let head = fit(&train, None, &quick(Method::Lp, 2), &device, &mut ()).unwrap().head;
    let score = crate::readback::blocking(validation_async(&head, &test, &device)).unwrap();
    assert_eq!(score.accuracy, accuracy(&head, &test, &device).unwrap());
    let (_, logits) = head.forward(test.features_tensor(&device));
    let labels: Vec<i64> = test.labels().iter().map(|&l| l as i64).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [test.n()]), &device);
    let burn_loss =
        CrossEntropyLossConfig::new().init(&device).forward(logits, labels).into_scalar::<f32>()
            as f64;
    assert!((score.loss - burn_loss).abs() < 1e-4, "{} {burn_loss}", score.loss);
    let lower_loss = Validation { loss: score.loss - 0.1, ..score };
    let higher_accuracy = Validation { accuracy: score.accuracy + 0.01, loss: score.loss + 1.0 };
    assert!(lower_loss.better_than(&score) && !score.better_than(&lower_loss));
    assert!(higher_accuracy.better_than(&lower_loss));
    assert!(!score.better_than(&score), "a full tie keeps the earlier one");
}
