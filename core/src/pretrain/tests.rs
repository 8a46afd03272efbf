use std::path::PathBuf;

use burn::tensor::Device;

use super::*;
use crate::models::Precision;
use crate::noise::LabelNoise;

/// The first `n` MNIST digits of the starter pack.
fn mnist(n: usize) -> ImageSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/starter");
    let all = ImageSet::load_idx(&dir.join("mnist10k-images-idx3-ubyte.gz"), &dir.join("mnist10k-labels-idx1-ubyte.gz")).unwrap();
    all.subset(&(0..n).collect::<Vec<_>>())
}

fn tiny(epochs: usize) -> PretrainConfig {
    PretrainConfig {
        model: ModelShape::Resnet { widths: vec![8, 16], blocks_per_stage: 1 },
        image_size: 14,
        epochs,
        batch_size: 64,
        ..PretrainConfig::default()
    }
}

fn weights(model: &Encoder) -> Vec<u8> {
    checkpoint::model_bytes(model, &CheckpointMeta { config: tiny(1), num_classes: 10, epochs_done: 0, history: vec![], vocabulary: vec![] }).unwrap()
}

/// Names of the tensors whose bytes differ between two models of one config.
fn differing_tensors(a: &Encoder, b: &Encoder) -> Vec<String> {
    let (a, b) = (weights(a), weights(b));
    let (ta, tb) = (safetensors::SafeTensors::deserialize(&a).unwrap(), safetensors::SafeTensors::deserialize(&b).unwrap());
    let mut names: Vec<String> = ta.names().into_iter().filter(|n| ta.tensor(n).unwrap().data() != tb.tensor(n).unwrap().data()).map(String::from).collect();
    names.sort();
    names
}

#[test]
fn pretraining_learns_real_digits_and_extracts_features() {
    let images = mnist(1500);
    let device = Device::flex();
    let config = PretrainConfig { optimizer: OptimizerChoice::Adamw { lr: 1e-2, weight_decay: 5e-4 }, ..tiny(3) };
    let run = pretrain(&images, &config, None, &device, &mut ()).unwrap();
    let h = &run.history;
    assert_eq!(h.len(), 3);
    assert!(h[2].loss < h[0].loss, "loss did not fall: {h:?}");
    assert!(h[2].train_accuracy > 0.4, "train accuracy {h:?}");
    let features = extract(&run.model, &images.subset(&[0, 1, 2, 3, 4]), 14, "five", &device).unwrap();
    assert_eq!((features.n, features.d, features.num_classes), (5, 16, 10));
    assert!(features.features.iter().all(|v| v.is_finite() && *v >= 0.0), "pooled ReLU features are non-negative");
}

#[test]
fn noise_is_applied_at_the_asked_ratio() {
    let images = mnist(1000);
    let config = PretrainConfig { noise: Some(LabelNoise::Symmetric { ratio: 0.3 }), ..tiny(1) };
    let (set, rate) = noisy_training_set(&images, &config).unwrap();
    assert!((rate - 0.3).abs() < 1e-12, "rate {rate}");
    let changed = set.labels.iter().zip(&images.labels).filter(|(a, b)| a != b).count();
    assert_eq!(changed, 300);
}

/// An interrupted run, resumed from its checkpoint, ends with exactly the weights of an
/// uninterrupted one (CPU backend).
#[test]
fn resumed_run_matches_an_uninterrupted_one() {
    struct StopAfter(usize);
    impl TrainObserver<EpochRecord> for StopAfter {
        fn on_epoch(&mut self, _: &EpochRecord) {
            self.0 -= 1;
        }
        fn should_stop(&mut self) -> bool {
            self.0 == 0
        }
    }
    let images = mnist(300);
    let device = Device::flex();
    let config = PretrainConfig { noise: Some(LabelNoise::Symmetric { ratio: 0.2 }), ..tiny(3) };
    let whole = tempfile::tempdir().unwrap();
    let straight = pretrain(&images, &config, Some(whole.path()), &device, &mut ()).unwrap();

    let broken = tempfile::tempdir().unwrap();
    let first = pretrain(&images, &config, Some(broken.path()), &device, &mut StopAfter(1)).unwrap();
    assert_eq!(first.epochs_trained, 1);
    let resumed = pretrain(&images, &config, Some(broken.path()), &device, &mut ()).unwrap();
    assert_eq!(resumed.epochs_trained, 2);
    assert_eq!(resumed.history.len(), 3);
    assert_eq!(differing_tensors(&straight.model, &resumed.model), Vec::<String>::new(), "resumed weights differ");
    // Only the last optimiser state is kept.
    let leftovers: Vec<_> = std::fs::read_dir(broken.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");

    // A finished run is loaded, not trained again.
    let again = pretrain(&images, &config, Some(broken.path()), &device, &mut ()).unwrap();
    assert_eq!(again.epochs_trained, 0);
    assert_eq!(differing_tensors(&again.model, &straight.model), Vec::<String>::new(), "reloaded weights differ");

    // Another config in the same directory is refused, and the checkpoint is kept.
    let before = std::fs::read(broken.path().join(checkpoint::MODEL_FILE)).unwrap();
    let other = PretrainConfig { seed: 9, ..config };
    let err = pretrain(&images, &other, Some(broken.path()), &device, &mut ()).err().unwrap().to_string();
    assert!(err.contains("another config"), "{err}");
    assert!(std::fs::read(broken.path().join(checkpoint::MODEL_FILE)).unwrap() == before, "checkpoint changed");
}


#[test]
fn a_vit_pretrains_and_extracts_too() {
    let images = mnist(800);
    let device = Device::flex();
    let config = PretrainConfig {
        model: ModelShape::Vit { patch_size: 7, dim: 32, depth: 2, heads: 4, mlp_ratio: 2 },
        optimizer: OptimizerChoice::Adamw { lr: 2e-3, weight_decay: 5e-4 },
        ..tiny(3)
    };
    let run = pretrain(&images, &config, None, &device, &mut ()).unwrap();
    let h = &run.history;
    assert!(h[2].loss < h[0].loss, "loss did not fall: {h:?}");
    let features = extract(&run.model, &images.subset(&[0, 1, 2]), 14, "three", &device).unwrap();
    assert_eq!((features.n, features.d), (3, 32));
    let bad = PretrainConfig { model: ModelShape::Vit { patch_size: 5, dim: 32, depth: 2, heads: 4, mlp_ratio: 2 }, ..tiny(1) };
    assert!(bad.validate().unwrap_err().to_string().contains("tile the image"));
}

/// CLIP-style pre-training on captions from the digit names: the loss falls, captions are
/// swapped at the asked ratio, and a killed-and-resumed run ends where a straight one does.
#[test]
fn contrastive_pretraining_learns_and_resumes() {
    let images = mnist(600);
    let device = Device::flex();
    let config = PretrainConfig { objective: Objective::digit_captions(0.2), ..tiny(3) };
    let whole = tempfile::tempdir().unwrap();
    let straight = pretrain(&images, &config, Some(whole.path()), &device, &mut ()).unwrap();
    let h = &straight.history;
    assert!(h[2].loss < h[0].loss, "loss did not fall: {h:?}");
    assert!((straight.noise_rate - 0.2).abs() < 1e-12, "caption noise {}", straight.noise_rate);

    struct StopAfterFirst;
    impl TrainObserver<EpochRecord> for StopAfterFirst {
        fn should_stop(&mut self) -> bool {
            true
        }
    }
    let broken = tempfile::tempdir().unwrap();
    pretrain(&images, &config, Some(broken.path()), &device, &mut StopAfterFirst).unwrap();
    let resumed = pretrain(&images, &config, Some(broken.path()), &device, &mut ()).unwrap();
    assert_eq!(resumed.epochs_trained, 2);
    assert_eq!(differing_tensors(&straight.model, &resumed.model), Vec::<String>::new());

    // The saved run loads back as an image encoder for extraction.
    let (encoder, meta) = load_model(&broken.path().join(checkpoint::MODEL_FILE), &device).unwrap();
    assert!(!meta.vocabulary.is_empty());
    assert_eq!(differing_tensors(&encoder, &straight.model), Vec::<String>::new());
    let features = extract(&encoder, &images.subset(&[0, 1]), 14, "two", &device).unwrap();
    assert_eq!(features.d, 16);
}

/// burn-train's multi-device strategy on two CPU replicas: it learns, an interrupted run
/// resumes from burn-train's checkpoint to the full history, and the result is an ordinary nml
/// checkpoint.
#[cfg(feature = "multi-device")]
#[test]
fn two_devices_pretrain_through_burn_train_and_resume() {
    struct StopAfterFirst;
    impl TrainObserver<EpochRecord> for StopAfterFirst {
        fn should_stop(&mut self) -> bool {
            true
        }
    }
    let images = mnist(1200);
    let devices = [Device::flex(), Device::flex()];
    let config = PretrainConfig {
        noise: Some(LabelNoise::Symmetric { ratio: 0.2 }),
        optimizer: OptimizerChoice::Adamw { lr: 1e-2, weight_decay: 5e-4 },
        ..tiny(3)
    };
    let dir = tempfile::tempdir().unwrap();
    let first = pretrain_multi_device(&images, &config, dir.path(), &devices, &mut StopAfterFirst).unwrap();
    assert!(first.history.len() < 3, "the stop was ignored: {:?}", first.history);
    let resumed = pretrain_multi_device(&images, &config, dir.path(), &devices, &mut ()).unwrap();
    let h = &resumed.history;
    assert_eq!(h.len(), 3);
    assert_eq!(resumed.epochs_trained, 3 - first.history.len());
    assert!(h[2].loss < h[0].loss && h[2].train_accuracy > 0.2, "did not learn (chance is 0.1): {h:?}");

    let (encoder, meta) = load_model(&dir.path().join(checkpoint::MODEL_FILE), &Device::flex()).unwrap();
    assert_eq!((meta.epochs_done, meta.history.len()), (3, 3));
    assert_eq!(differing_tensors(&encoder, &resumed.model), Vec::<String>::new());
    let again = pretrain_multi_device(&images, &config, dir.path(), &devices, &mut ()).unwrap();
    assert_eq!(again.epochs_trained, 0, "a finished run is loaded, not trained again");

    let err = pretrain_multi_device(&images, &config, dir.path(), &devices[..1], &mut ()).err().unwrap().to_string();
    assert!(err.contains("at least two devices"), "{err}");
}

/// Mixed precision trains like f32 (its weights and checkpoint stay f32), and f16 is refused
/// with SGD, whose steps would feel the loss scale.
#[test]
fn mixed_precision_tracks_f32() {
    let images = mnist(600);
    let device = Device::flex();
    let run = |precision| {
        let config = PretrainConfig { precision, ..tiny(2) };
        pretrain(&images, &config, None, &device, &mut ()).unwrap()
    };
    let full = run(Precision::F32);
    for precision in [Precision::Bf16, Precision::F16] {
        let mixed = run(precision);
        for (a, b) in full.history.iter().zip(&mixed.history) {
            assert!((a.loss - b.loss).abs() < 0.02 * a.loss, "{precision}: loss {} vs f32 {}", b.loss, a.loss);
        }
        let features = extract(&mixed.model, &images.subset(&[0, 1]), 14, "two", &device).unwrap();
        assert!(features.features.iter().all(|v| v.is_finite()));
        let bytes = weights(&mixed.model);
        let saved = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert!(saved.tensors().iter().all(|(_, t)| t.dtype() != safetensors::Dtype::BF16 && t.dtype() != safetensors::Dtype::F16));
    }
    let sgd = PretrainConfig { precision: Precision::F16, optimizer: OptimizerChoice::Sgd { lr: 0.1, momentum: 0.9, weight_decay: 0.0 }, ..tiny(1) };
    assert!(sgd.validate().unwrap_err().to_string().contains("AdamW"));
}
