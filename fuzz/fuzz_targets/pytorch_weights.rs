#![no_main]
//! A PyTorch checkpoint, as a `.pth` pickle (first byte even) or a `.safetensors` file (odd):
//! read for tensors' shapes and loaded into small models through every key layout nml has
//! (torchvision's, efficientnet-lite-pytorch's renames, timm's ViT). Hostile pickles (unknown
//! opcodes, huge or overlapping storages) must be errors, never panics, and nothing in them
//! runs.
use libfuzzer_sys::fuzz_target;
use nml_core::Device;
use nml_core::models::{
    EFFICIENTNET_LITE, ResNetConfig, TIMM_VIT, TORCHVISION_RESNET, TimmVitConfig,
    checkpoint_shapes, load_pytorch_weights,
};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    let extension = if kind % 2 == 0 { "pth" } else { "safetensors" };
    let path = std::env::temp_dir().join(format!("nml-fuzz-{}.{extension}", std::process::id()));
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    let device = Device::flex();
    let _ = checkpoint_shapes(&path, &["conv1.weight", "fc.weight", "pos_embed"]);
    let mut resnet = ResNetConfig::new(vec![2], 2).init(0, &device);
    let _ = load_pytorch_weights(&mut resnet, &path, &TORCHVISION_RESNET);
    let _ = load_pytorch_weights(&mut resnet, &path, &EFFICIENTNET_LITE);
    let mut vit =
        TimmVitConfig::new(4, 1, 1, 2).with_image_size(4).with_patch_size(2).init(0, &device);
    let _ = load_pytorch_weights(&mut vit, &path, &TIMM_VIT);
    let _ = std::fs::remove_file(&path);
});
