use std::path::PathBuf;

use burn::tensor::Device;

use super::*;
use crate::models::{ComputePrecision, InputTransform};
use crate::noise::LabelNoise;
use crate::train::{Observer, OptimizerConfig};

/// The first `n` MNIST digits of the starter pack.
fn mnist(n: usize) -> ImageSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/starter");
    let all = ImageSet::read_idx(
        &dir.join("mnist10k-images-idx3-ubyte.gz"),
        &dir.join("mnist10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    all.subset(&(0..n).collect::<Vec<_>>())
}

/// Stops a run after this many epochs.
struct StopAfter(usize);

impl Observer<EpochRecord> for StopAfter {
    fn on_epoch(&mut self, _: &EpochRecord) {
        self.0 -= 1;
    }
    fn should_stop(&mut self) -> bool {
        self.0 == 0
    }
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
    crate::train::model_bytes(
        model,
        META_KEY,
        &CheckpointMeta {
            config: tiny(1),
            num_classes: 10,
            in_channels: 1,
            epochs_done: 0,
            history: vec![],
            vocabulary: vec![],
        },
    )
    .unwrap()
}

/// Names of the tensors whose bytes differ between two models of one config.
fn differing_tensors(a: &Encoder, b: &Encoder) -> Vec<String> {
    let (a, b) = (weights(a), weights(b));
    let (ta, tb) = (
        safetensors::SafeTensors::deserialize(&a).unwrap(),
        safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    let mut names: Vec<String> = ta
        .names()
        .into_iter()
        .filter(|n| ta.tensor(n).unwrap().data() != tb.tensor(n).unwrap().data())
        .map(String::from)
        .collect();
    names.sort();
    names
}

#[test]
fn pretraining_learns_real_digits_and_extracts_features() {
    let images = mnist(1500);
    let device = Device::flex();
    let config = PretrainConfig {
        optimizer: OptimizerConfig::Adamw { lr: 1e-2, weight_decay: 5e-4 },
        ..tiny(3)
    };
    let run = pretrain(&images, &config, None, &device, &mut ()).unwrap();
    let h = &run.history;
    assert_eq!(h.len(), 3);
    assert!(h[2].loss < h[0].loss, "loss did not fall: {h:?}");
    assert!(h[2].train_accuracy > 0.4, "train accuracy {h:?}");
    let features = run
        .model
        .extract(&images.subset(&[0, 1, 2, 3, 4]), &InputTransform::new(14), "five", &device)
        .unwrap();
    assert_eq!((features.n(), features.d(), features.num_classes()), (5, 16, 10));
    assert!(
        features.features().iter().all(|v| v.is_finite() && *v >= 0.0),
        "pooled ReLU features are non-negative"
    );
}

/// Colour end to end: an RGB set pre-trains an encoder with three input channels, its checkpoint
/// reads back as one, and a grey set given to it is taken as its three-channel copy.
#[test]
fn colour_runs_save_three_channel_encoders_that_take_grey_images() {
    let grey = mnist(300);
    // The green channel is dimmed for odd labels, so colour carries some of the label.
    let rgb = grey.with_channels(3).unwrap();
    let pixels: Vec<u8> = rgb
        .pixels()
        .chunks_exact(rgb.image_len())
        .zip(rgb.labels())
        .flat_map(|(img, &label)| {
            img.chunks_exact(3)
                .flat_map(move |p| [p[0], if label % 2 == 1 { p[1] / 2 } else { p[1] }, p[2]])
        })
        .collect();
    let colour =
        ImageSet::new("tinted", [28, 28, 3], pixels, rgb.labels().to_vec(), Some(10)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let run = pretrain(&colour, &tiny(1), Some(dir.path()), &device, &mut ()).unwrap();
    assert_eq!(run.model.in_channels(), 3);
    let saved = crate::EncoderFile::in_run_dir(dir.path(), &device).unwrap();
    assert_eq!(saved.encoder.in_channels(), 3);
    assert_eq!(saved.pretraining.in_channels, 3);
    let five = grey.subset(&[0, 1, 2, 3, 4]);
    let from_grey =
        saved.encoder.extract(&five, &InputTransform::new(14), "grey", &device).unwrap();
    let from_copy = saved
        .encoder
        .extract(&five.with_channels(3).unwrap(), &InputTransform::new(14), "copy", &device)
        .unwrap();
    assert_eq!(from_grey.features(), from_copy.features());
    // A resumed run on grey images of the same config is refused: the channels differ.
    let err = pretrain(&grey, &tiny(1), Some(dir.path()), &device, &mut ())
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("another config"), "{err}");
}

#[test]
fn noise_is_applied_at_the_asked_ratio() {
    let images = mnist(1000);
    let config = PretrainConfig { noise: Some(LabelNoise::Symmetric { ratio: 0.3 }), ..tiny(1) };
    let (set, rate) = noisy_training_set(&images, &config).unwrap();
    assert!((rate - 0.3).abs() < 1e-12, "rate {rate}");
    let changed = set.labels().iter().zip(images.labels()).filter(|(a, b)| a != b).count();
    assert_eq!(changed, 300);
}

/// An interrupted run, resumed from its checkpoint, ends with exactly the weights of an
/// uninterrupted one (CPU backend).
#[test]
fn resumed_run_matches_an_uninterrupted_one() {
    let images = mnist(300);
    let device = Device::flex();
    let config = PretrainConfig { noise: Some(LabelNoise::Symmetric { ratio: 0.2 }), ..tiny(3) };
    let whole = tempfile::tempdir().unwrap();
    let straight = pretrain(&images, &config, Some(whole.path()), &device, &mut ()).unwrap();

    let broken = tempfile::tempdir().unwrap();
    let first =
        pretrain(&images, &config, Some(broken.path()), &device, &mut StopAfter(1)).unwrap();
    assert_eq!(first.epochs_trained, 1);
    let resumed = pretrain(&images, &config, Some(broken.path()), &device, &mut ()).unwrap();
    assert_eq!(resumed.epochs_trained, 2);
    assert_eq!(resumed.history.len(), 3);
    assert_eq!(
        differing_tensors(&straight.model, &resumed.model),
        Vec::<String>::new(),
        "resumed weights differ"
    );
    // Only the last optimiser state is kept.
    let leftovers: Vec<_> =
        std::fs::read_dir(broken.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");

    // A finished run is loaded, not trained again.
    let again = pretrain(&images, &config, Some(broken.path()), &device, &mut ()).unwrap();
    assert_eq!(again.epochs_trained, 0);
    assert_eq!(
        differing_tensors(&again.model, &straight.model),
        Vec::<String>::new(),
        "reloaded weights differ"
    );

    // Another config in the same directory is refused, and the checkpoint is kept.
    let before = std::fs::read(broken.path().join(RunDir::MODEL_FILE)).unwrap();
    let other = PretrainConfig { seed: 9, ..config };
    let err =
        pretrain(&images, &other, Some(broken.path()), &device, &mut ()).err().unwrap().to_string();
    assert!(err.contains("another config"), "{err}");
    assert!(
        std::fs::read(broken.path().join(RunDir::MODEL_FILE)).unwrap() == before,
        "checkpoint changed"
    );
}

#[test]
fn a_vit_pretrains_and_extracts_too() {
    let images = mnist(800);
    let device = Device::flex();
    let config = PretrainConfig {
        model: ModelShape::Vit { patch_size: 7, dim: 32, depth: 2, heads: 4, mlp_ratio: 2 },
        optimizer: OptimizerConfig::Adamw { lr: 2e-3, weight_decay: 5e-4 },
        ..tiny(3)
    };
    let run = pretrain(&images, &config, None, &device, &mut ()).unwrap();
    let h = &run.history;
    assert!(h[2].loss < h[0].loss, "loss did not fall: {h:?}");
    let features = run
        .model
        .extract(&images.subset(&[0, 1, 2]), &InputTransform::new(14), "three", &device)
        .unwrap();
    assert_eq!((features.n(), features.d()), (3, 32));
    let bad = PretrainConfig {
        model: ModelShape::Vit { patch_size: 5, dim: 32, depth: 2, heads: 4, mlp_ratio: 2 },
        ..tiny(1)
    };
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

    let broken = tempfile::tempdir().unwrap();
    pretrain(&images, &config, Some(broken.path()), &device, &mut StopAfter(1)).unwrap();
    let resumed = pretrain(&images, &config, Some(broken.path()), &device, &mut ()).unwrap();
    assert_eq!(resumed.epochs_trained, 2);
    assert_eq!(differing_tensors(&straight.model, &resumed.model), Vec::<String>::new());
    assert!(!saved_run(broken.path()).unwrap().unwrap().vocabulary.is_empty());
}

/// Data parallel over two CPU replicas: it learns, and an interrupted run resumes to exactly
/// the weights of an uninterrupted two-device run, in the run directory of a one-device run.
#[test]
fn two_devices_pretrain_and_resume_exactly() {
    let images = mnist(600);
    let devices = [Device::flex(), Device::flex()];
    let config = PretrainConfig {
        noise: Some(LabelNoise::Symmetric { ratio: 0.2 }),
        optimizer: OptimizerConfig::Adamw { lr: 1e-2, weight_decay: 5e-4 },
        ..tiny(3)
    };
    let whole = tempfile::tempdir().unwrap();
    let straight =
        pretrain_data_parallel(&images, &config, Some(whole.path()), &devices, &mut ()).unwrap();
    let h = &straight.history;
    assert!(h[2].loss < h[0].loss, "did not learn: {h:?}");
    let broken = tempfile::tempdir().unwrap();
    let first =
        pretrain_data_parallel(&images, &config, Some(broken.path()), &devices, &mut StopAfter(1))
            .unwrap();
    assert_eq!(first.history.len(), 1);
    let resumed =
        pretrain_data_parallel(&images, &config, Some(broken.path()), &devices, &mut ()).unwrap();
    assert_eq!((resumed.epochs_trained, resumed.history.len()), (2, 3));
    assert_eq!(
        differing_tensors(&straight.model, &resumed.model),
        Vec::<String>::new(),
        "resumed weights differ"
    );
    let names: Vec<_> = std::fs::read_dir(broken.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "model and last optimiser state, as one device writes: {names:?}");
    // The one-device path reads the finished run as its own.
    let again = pretrain(&images, &config, Some(broken.path()), &Device::flex(), &mut ()).unwrap();
    assert_eq!(again.epochs_trained, 0);
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
    let full = run(ComputePrecision::F32);
    for precision in [ComputePrecision::Bf16, ComputePrecision::F16] {
        let mixed = run(precision);
        for (a, b) in full.history.iter().zip(&mixed.history) {
            assert!(
                (a.loss - b.loss).abs() < 0.02 * a.loss,
                "{precision}: loss {} vs f32 {}",
                b.loss,
                a.loss
            );
        }
        let features = mixed
            .model
            .extract(&images.subset(&[0, 1]), &InputTransform::new(14), "two", &device)
            .unwrap();
        assert!(features.features().iter().all(|v| v.is_finite()));
        let bytes = weights(&mixed.model);
        let saved = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert!(
            saved.tensors().iter().all(|(_, t)| t.dtype() != safetensors::Dtype::BF16
                && t.dtype() != safetensors::Dtype::F16)
        );
    }
    let sgd = PretrainConfig {
        precision: ComputePrecision::F16,
        optimizer: OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9, weight_decay: 0.0 },
        ..tiny(1)
    };
    assert!(sgd.validate().unwrap_err().to_string().contains("AdamW"));
}

/// `images` written as a class folder of PNGs (`DIR/LABEL/NNNN.png`).
fn png_folder(images: &ImageSet) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, &label) in images.labels().iter().enumerate() {
        let class = dir.path().join(label.to_string());
        std::fs::create_dir_all(&class).unwrap();
        let (h, w) = (images.height() as u32, images.width() as u32);
        image::GrayImage::from_raw(w, h, images.image(i).to_vec())
            .unwrap()
            .save(class.join(format!("{i:04}.png")))
            .unwrap();
    }
    dir
}

/// A class folder streamed by the background pool pre-trains (the loss falls on real digits),
/// and a run stopped after one epoch resumes to exactly the weights of an uninterrupted one,
/// on one device and split over two.
#[test]
fn a_streamed_folder_pretrains_and_resumes_exactly() {
    use crate::data::{ImageSource, LoaderConfig};
    let images = mnist(400);
    let folder = png_folder(&images);
    let source: ImageSource = format!("{}|grey", folder.path().display()).parse().unwrap();
    let streamed = source.streamed().unwrap();
    assert_eq!((streamed.n(), streamed.num_classes(), streamed.channels()), (400, 10, 1));
    let config = PretrainConfig {
        noise: Some(LabelNoise::Symmetric { ratio: 0.2 }),
        optimizer: OptimizerConfig::Adamw { lr: 1e-2, weight_decay: 5e-4 },
        augment: crate::data::AugmentConfig { pad: 2, flip: false, ..Default::default() },
        ..tiny(3)
    };
    let loader = LoaderConfig { workers: 2, prefetch: 2 };
    for devices in [vec![Device::flex()], vec![Device::flex(), Device::flex()]] {
        let whole = tempfile::tempdir().unwrap();
        let straight =
            pretrain_streamed(&streamed, loader, &config, Some(whole.path()), &devices, &mut ())
                .unwrap();
        let h = &straight.history;
        assert!(h[2].loss < h[0].loss, "did not learn: {h:?}");
        assert!((straight.noise_rate - 0.2).abs() < 1e-12);
        let broken = tempfile::tempdir().unwrap();
        let first = pretrain_streamed(
            &streamed,
            LoaderConfig { workers: 1, prefetch: 1 },
            &config,
            Some(broken.path()),
            &devices,
            &mut StopAfter(1),
        )
        .unwrap();
        assert_eq!(first.epochs_trained, 1);
        let resumed =
            pretrain_streamed(&streamed, loader, &config, Some(broken.path()), &devices, &mut ())
                .unwrap();
        assert_eq!((resumed.epochs_trained, resumed.history.len()), (2, 3));
        assert_eq!(
            differing_tensors(&straight.model, &resumed.model),
            Vec::<String>::new(),
            "resumed weights differ on {} device(s)",
            devices.len()
        );
    }
    assert!(streamed.skipped().is_empty());
}
