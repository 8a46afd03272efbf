use std::path::PathBuf;

use burn::tensor::Device;

use super::*;
use crate::models::{InputTransform, VitConfig};
use crate::pretrain::{ModelShape, PretrainConfig, pretrain};

fn mnist(range: std::ops::Range<usize>) -> ImageSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/starter");
    let all = ImageSet::read_idx(
        &dir.join("mnist10k-images-idx3-ubyte.gz"),
        &dir.join("mnist10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    all.subset(&range.collect::<Vec<_>>())
}

fn small_vit(device: &Device) -> Encoder {
    Encoder::Vit(VitConfig::new(14, 7, 32, 2, 4, 10).with_mlp_ratio(2).init(3, device))
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn batch(images: &ImageSet, device: &Device) -> Tensor<4> {
    let set = images.resized(14, 14);
    let idx: Vec<usize> = (0..set.n()).collect();
    crate::models::image_tensor(&set, &idx, None, device).unwrap()
}

#[test]
fn lora_starts_equal_to_the_base_and_trains_only_adapters_and_head() {
    let device = Device::flex().autodiff();
    let base = small_vit(&device);
    let x = batch(&mnist(0..8), &device);
    let before = values(base.embed(x.clone()));
    let config = FinetuneConfig { epochs: 1, ..FinetuneConfig::for_method(FinetuneMethod::Lora) };
    let model = prepare(base.clone(), 10, &config, &device).unwrap();
    assert!(
        max_diff(&before, &values(model.encoder.embed(x.clone()))) < 1e-6,
        "LoRA at init changed the features"
    );

    // rank 8 on fc1 (32x64) and fc2 (64x32) of 2 blocks, plus the 32x10 head with bias.
    let count = count_params(&model);
    assert_eq!(count.trainable, 2 * (8 * (32 + 64) + 8 * (64 + 32)) + 32 * 10 + 10, "{count:?}");
    assert!(count.total > count.trainable * 3, "{count:?}");

    let (tuned, _) =
        finetune(model, &mnist(0..200), &InputTransform::new(14), &config, &device, &mut ())
            .unwrap();
    let (Encoder::Vit(old), Encoder::Vit(new)) = (&base, &tuned.encoder) else { unreachable!() };
    // Frozen: the patch embedding and the adapted weights' bases.
    assert_eq!(
        values(old.patch_embedding.weight.val().reshape([32, 49])),
        values(new.patch_embedding.weight.val().reshape([32, 49]))
    );
    assert_eq!(
        values(old.blocks[0].mlp.fc1.weight.base()),
        values(new.blocks[0].mlp.fc1.weight.base())
    );
    assert_eq!(
        values(old.blocks[1].attention.query.weight.val()),
        values(new.blocks[1].attention.query.weight.val()),
        "attention is not a default target"
    );
    // Trained: the effective adapted weight moved.
    assert!(
        max_diff(
            &values(old.blocks[0].mlp.fc1.weight.val()),
            &values(new.blocks[0].mlp.fc1.weight.val())
        ) > 1e-6
    );
}

#[test]
fn merged_and_unmerged_give_the_same_outputs() {
    let device = Device::flex().autodiff();
    let config = FinetuneConfig {
        epochs: 1,
        lora: LoraConfig {
            targets: LoraTargets::MlpAndAttention,
            dropout: 0.1,
            ..LoraConfig::default()
        },
        ..FinetuneConfig::for_method(FinetuneMethod::LoraNmtune)
    };
    let model = prepare(small_vit(&device), 10, &config, &device).unwrap();
    let (tuned, _) =
        finetune(model, &mnist(0..200), &InputTransform::new(14), &config, &device, &mut ())
            .unwrap();
    let x = batch(&mnist(300..316), &device);
    let unmerged = values(tuned.forward(x.clone()).1);
    let merged = tuned.merged();
    assert_eq!(
        count_params(&merged).total,
        count_params(
            &prepare(
                small_vit(&device),
                10,
                &FinetuneConfig::for_method(FinetuneMethod::Ft),
                &device
            )
            .unwrap()
        )
        .total,
        "adapters are gone after merging"
    );
    assert!(max_diff(&unmerged, &values(merged.forward(x).1)) < 1e-4);
}

/// A short run on real digits lowers the loss: LoRA on a ViT pre-trained for one epoch, and
/// full fine-tuning of a ResNet (which LoRA refuses by name).
#[test]
fn short_runs_lower_the_loss_on_real_digits() {
    let device = Device::flex();
    let pretrained = pretrain(
        &mnist(0..600),
        &PretrainConfig {
            model: ModelShape::Vit { patch_size: 7, dim: 32, depth: 2, heads: 4, mlp_ratio: 2 },
            image_size: 14,
            epochs: 1,
            batch_size: 64,
            ..PretrainConfig::default()
        },
        None,
        &device,
        &mut (),
    )
    .unwrap();
    let ad = device.clone().autodiff();
    let task = mnist(1000..1600);
    for method in [FinetuneMethod::Lora, FinetuneMethod::FtNmtune] {
        let config = FinetuneConfig { epochs: 3, lr: 3e-3, ..FinetuneConfig::for_method(method) };
        let model = prepare(pretrained.model.clone(), 10, &config, &ad).unwrap();
        let (tuned, history) =
            finetune(model, &task, &InputTransform::new(14), &config, &ad, &mut ()).unwrap();
        assert!(history[2].ce < history[0].ce, "{method:?}: loss did not fall: {history:?}");
        let (Encoder::Vit(old), Encoder::Vit(new)) = (&pretrained.model, &tuned.encoder) else {
            unreachable!()
        };
        let moved = max_diff(
            &values(old.blocks[0].mlp.fc1.weight.val()),
            &values(new.blocks[0].mlp.fc1.weight.val()),
        );
        assert!(moved > 1e-6, "{method:?}: the encoder did not train");
        let acc = accuracy(&tuned, &mnist(2000..2300), &InputTransform::new(14), &ad).unwrap();
        // From a ViT pre-trained for a single epoch, three short epochs only need to beat chance.
        assert!(acc > 0.12, "{method:?}: held-out accuracy {acc} (chance is 0.1)");
        println!(
            "{method:?}: cross-entropy {:.3} -> {:.3}, held-out accuracy {acc:.3}",
            history[0].ce, history[2].ce
        );
    }
    let resnet = crate::models::ResNetConfig::new(vec![4, 8], 10).init(0, &ad);
    let err = prepare(
        Encoder::ResNet(resnet),
        10,
        &FinetuneConfig::for_method(FinetuneMethod::Lora),
        &ad,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("convolutional network"), "{err}");
}

/// On timm's ViT, LoRA with the attention targets adapts the fused `qkv`, `proj`, `fc1` and
/// `fc2` of every block, leaves the features unchanged at the start, and trains.
#[test]
fn lora_adapts_timms_qkv_proj_fc1_and_fc2() {
    let device = Device::flex().autodiff();
    let vit = crate::models::TimmVitConfig::new(32, 2, 2, 10)
        .with_image_size(16)
        .with_patch_size(8)
        .init(5, &device);
    let base = Encoder::TimmVit(vit);
    let input = InputTransform::new(16);
    let images = mnist(0..200).with_channels(3).unwrap();
    let x =
        crate::models::image_tensor(&images.resized(16, 16), &[0, 1, 2, 3], None, &device).unwrap();
    let before = values(base.embed(x.clone()));
    let config = FinetuneConfig {
        epochs: 1,
        lora: LoraConfig { targets: LoraTargets::MlpAndAttention, ..LoraConfig::default() },
        ..FinetuneConfig::for_method(FinetuneMethod::Lora)
    };
    let model = prepare(base.clone(), 10, &config, &device).unwrap();
    assert!(max_diff(&before, &values(model.encoder.embed(x))) < 1e-6, "LoRA at init moved");
    // Rank 8 on qkv (32x96), proj (32x32), fc1 (32x128), fc2 (128x32) in 2 blocks, and the head.
    let per_block = 8 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32));
    assert_eq!(count_params(&model).trainable, 2 * per_block + 32 * 10 + 10);
    let (tuned, _) = finetune(model, &images, &input, &config, &device, &mut ()).unwrap();
    let (Encoder::TimmVit(old), Encoder::TimmVit(new)) = (&base, &tuned.encoder) else {
        unreachable!()
    };
    assert_eq!(
        values(old.blocks[0].attn.qkv.weight.base()),
        values(new.blocks[0].attn.qkv.weight.base()),
        "the base weights stay frozen"
    );
    assert!(
        max_diff(
            &values(old.blocks[0].attn.qkv.weight.val()),
            &values(new.blocks[0].attn.qkv.weight.val())
        ) > 1e-6,
        "the adapted qkv moved"
    );
}

fn saved_tensors(bytes: &[u8]) -> Vec<(String, usize)> {
    let tensors = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let mut names: Vec<(String, usize)> =
        tensors.tensors().into_iter().map(|(n, t)| (n, t.shape().iter().product())).collect();
    names.sort();
    names
}

fn meta_for(config: &FinetuneConfig) -> FinetuneMeta {
    let base = PretrainConfig {
        model: ModelShape::Vit { patch_size: 7, dim: 32, depth: 2, heads: 4, mlp_ratio: 2 },
        image_size: 14,
        ..PretrainConfig::default()
    };
    FinetuneMeta {
        config: config.clone(),
        base: crate::pretrain::CheckpointMeta {
            config: base,
            num_classes: 10,
            in_channels: 1,
            epochs_done: 1,
            history: Vec::new(),
            vocabulary: Vec::new(),
        },
        num_classes: 10,
        image_size: 14,
        merged: false,
    }
}

/// `--save` after LoRA keeps exactly the trained parameters; `--export` writes the merged model,
/// which loads back with the same outputs (`EncoderFile` reads it as `nml extract` does: tested
/// there).
#[test]
fn saved_lora_holds_only_adapters_and_head_and_export_loads_back() {
    let device = Device::flex().autodiff();
    let config = FinetuneConfig { epochs: 1, ..FinetuneConfig::for_method(FinetuneMethod::Lora) };
    let meta = meta_for(&config);
    let base = meta.base.config.init_encoder(1, 10, 3, &device);
    let model = prepare(base, 10, &config, &device).unwrap();
    let trainable = count_params(&model).trainable;
    let (tuned, _) =
        finetune(model, &mnist(0..128), &InputTransform::new(14), &config, &device, &mut ())
            .unwrap();

    let saved = saved_tensors(&trained_bytes(&tuned, &meta).unwrap());
    assert_eq!(saved.iter().map(|(_, n)| n).sum::<usize>(), trainable, "{saved:?}");
    assert!(
        saved.iter().all(|(name, _)| name.starts_with("head.")
            || name.ends_with(".lora.a")
            || name.ends_with(".lora.b")),
        "{saved:?}"
    );
    assert_eq!(
        saved.iter().filter(|(name, _)| name.ends_with(".lora.a")).count(),
        4,
        "fc1 and fc2 of two blocks: {saved:?}"
    );

    let x = batch(&mnist(300..316), &device);
    let (features, logits) = tuned.forward(x.clone());
    let exported = merged_bytes(tuned, &meta).unwrap();
    assert!(saved_tensors(&exported).iter().all(|(name, _)| !name.contains("lora")));
    let (loaded, loaded_meta) = load_merged(&exported, "exported", &device).unwrap();
    assert!(loaded_meta.merged);
    assert!(max_diff(&values(logits), &values(loaded.forward(x.clone()).1)) < 1e-4);
    assert!(max_diff(&values(features), &values(loaded.encoder.embed(x))) < 1e-4);
    let err = load_merged(&trained_bytes(&loaded, &meta).unwrap(), "adapters.safetensors", &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("adapters.safetensors") && err.contains("--export"), "{err}");
}

/// The whole run scores the test and OOD sets and refuses labels the training set lacks.
#[test]
fn run_scores_test_and_ood_sets_and_refuses_unknown_labels() {
    let device = Device::flex();
    let config = FinetuneConfig { epochs: 1, ..FinetuneConfig::for_method(FinetuneMethod::Ft) };
    let encoder =
        Encoder::ResNet(crate::models::ResNetConfig::new(vec![4, 8], 10).init(0, &device));
    let test = mnist(500..600);
    let ood = vec![("rotated".to_string(), test.rotated(30.0))];
    let out = run(
        encoder.clone(),
        &InputTransform::new(14),
        &mnist(0..300),
        &test,
        &ood,
        &config,
        &device,
        &mut (),
    )
    .unwrap();
    assert_eq!(out.report.history.len(), 1);
    // Everything trains but BatchNorm's running mean and variance: the stem's norm (4 channels),
    // block 1's two (4 each), block 2's two and its shortcut's (8 each).
    let p = out.report.params;
    assert_eq!(p.total - p.trainable, 2 * (4 + 4 + 4 + 8 + 8 + 8), "{p:?}");
    assert!((0.0..=1.0).contains(&out.report.accuracy) && out.report.ood.contains_key("rotated"));

    let mut labels = test.labels().to_vec();
    labels[3] = 12;
    let bad = ImageSet::new(
        "bad",
        [test.height(), test.width(), 1],
        test.pixels().to_vec(),
        labels,
        None,
    )
    .unwrap();
    let err = run(
        encoder,
        &InputTransform::new(14),
        &mnist(0..300),
        &bad,
        &[],
        &config,
        &device,
        &mut (),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("label 12 at index 3"), "{err}");
}

/// WiSE-FT's ends are the two models it mixes: at 0 the pre-trained encoder with a linear probe
/// on its features, at 1 the fine-tuned model (LoRA's adapters merged first).
#[test]
fn wise_ft_ends_are_the_probe_and_the_fine_tuned_model() {
    let device = Device::flex();
    let input = InputTransform::new(14);
    let (train, test) = (mnist(0..300), mnist(500..600));
    let ood = vec![("rotated".to_string(), test.rotated(30.0))];
    let encoder = small_vit(&device);
    let config = FinetuneConfig {
        epochs: 1,
        wise_alphas: vec![0.0, 0.5, 1.0],
        ..FinetuneConfig::for_method(FinetuneMethod::Lora)
    };
    let out = run(encoder.clone(), &input, &train, &test, &ood, &config, &device, &mut ()).unwrap();
    let wise = &out.report.wise;
    assert_eq!(wise.iter().map(|p| p.alpha).collect::<Vec<_>>(), [0.0, 0.5, 1.0]);

    let features = |set: &ImageSet| encoder.extract(set, &input, "f", &device).unwrap();
    let probe = probe_head(&features(&train), config.seed, &device).unwrap();
    let probe = crate::tune::FeatureHead { transform: None, classifier: probe };
    let probe_accuracy = |set: &ImageSet| crate::tune::accuracy(&probe, &features(set), &device);
    // Merging the adapters, or scoring in other batches, moves the last bits of a few logits:
    // at most one image's label.
    let one_image = 1.0 / test.n() as f64 + 1e-12;
    assert!((wise[0].accuracy - probe_accuracy(&test).unwrap()).abs() <= one_image);
    assert!((wise[0].ood["rotated"] - probe_accuracy(&ood[0].1).unwrap()).abs() <= one_image);
    assert!((wise[2].accuracy - out.report.accuracy).abs() <= one_image, "{wise:?}");
    assert!((wise[2].ood["rotated"] - out.report.ood["rotated"]).abs() <= one_image);

    let bad = FinetuneConfig { wise_alphas: vec![2.0], ..config };
    let err = run(encoder, &input, &train, &test, &[], &bad, &device, &mut ()).err().unwrap();
    assert!(err.to_string().contains("alpha must be in [0, 1]"), "{err}");
}
