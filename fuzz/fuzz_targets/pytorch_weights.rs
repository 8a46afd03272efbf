#![no_main]
//! A PyTorch checkpoint, as a `.pth` pickle (first byte even) or a `.safetensors` file (odd):
//! read for a tensor's shape and loaded into a small model in torchvision's layout. Hostile
//! pickles (unknown opcodes, huge or overlapping storages) must be errors, never panics, and
//! nothing in them runs.
use libfuzzer_sys::fuzz_target;
use nml_core::Device;
use nml_core::models::{ResNetConfig, TORCHVISION_RESNET, checkpoint_shapes, load_pytorch_weights};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    let extension = if kind % 2 == 0 { "pth" } else { "safetensors" };
    let path = std::env::temp_dir().join(format!("nml-fuzz-{}.{extension}", std::process::id()));
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    let _ = checkpoint_shapes(&path, &["conv1.weight", "fc.weight"]);
    let mut model = ResNetConfig::new(vec![2], 2).init(0, &Device::flex());
    let _ = load_pytorch_weights(&mut model, &path, &TORCHVISION_RESNET);
    let _ = std::fs::remove_file(&path);
});
