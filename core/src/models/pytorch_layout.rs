//! Weights in the key layout of the PyTorch library an architecture comes from (torchvision for
//! the ResNets, efficientnet-lite-pytorch for EfficientNet-Lite, timm for the ViTs), so the
//! checkpoints people have load as they are and what nml trains loads back into PyTorch with
//! `load_state_dict`.
//!
//! Reading goes through burn-store: `.pth`/`.pt`/`.bin` pickles with its `PytorchStore` (which
//! reads tensors and plain containers and executes nothing), `.safetensors` with its
//! `SafetensorsStore`; both transpose linear weights and rename norm parameters as PyTorch has
//! them. What an architecture's keys need beyond that is its [`PytorchLayout`].

use std::path::Path;

use burn::module::Module;
#[cfg(not(target_arch = "wasm32"))]
use burn::store::PytorchStore;
use burn::store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore,
    PyTorchToBurnAdapter, SafetensorsStore,
};

use crate::error::{NmlError, Result};

/// How one architecture's PyTorch keys differ from its nml paths: substrings rewritten each way,
/// and PyTorch entries that hold no weights.
#[derive(Clone, Copy, Debug)]
pub struct PytorchLayout {
    /// The library whose layout this is, for messages.
    pub library: &'static str,
    /// (PyTorch, nml) pairs of key substrings, e.g. `.downsample.0.` and `.downsample.conv.`.
    pub renames: &'static [(&'static str, &'static str)],
    /// Key suffixes in PyTorch checkpoints that are bookkeeping, not weights.
    pub ignored_suffixes: &'static [&'static str],
}

/// The layout of torchvision's ResNets: its `downsample` is a `Sequential`, so its convolution
/// and batch norm are `downsample.0` and `downsample.1`.
pub const TORCHVISION_RESNET: PytorchLayout = PytorchLayout {
    library: "torchvision",
    renames: &[(".downsample.0.", ".downsample.conv."), (".downsample.1.", ".downsample.bn.")],
    ignored_suffixes: &["num_batches_tracked"],
};

/// The layout of `efficientnet-lite-pytorch` (after lukemelas' EfficientNet-PyTorch), which
/// starts every module's name with an underscore (`_blocks.3._depthwise_conv.weight`): nml's
/// names are the same without it.
pub const EFFICIENTNET_LITE: PytorchLayout = PytorchLayout {
    library: "efficientnet-lite-pytorch",
    renames: &[
        ("_conv_stem.", "conv_stem."),
        ("_conv_head.", "conv_head."),
        ("_blocks.", "blocks."),
        ("_expand_conv.", "expand_conv."),
        ("_depthwise_conv.", "depthwise_conv."),
        ("_project_conv.", "project_conv."),
        ("_bn0.", "bn0."),
        ("_bn1.", "bn1."),
        ("_bn2.", "bn2."),
        ("_fc.", "fc."),
    ],
    ignored_suffixes: &["num_batches_tracked"],
};

/// The layout of timm's Vision Transformers: nml's fields are timm's names.
pub const TIMM_VIT: PytorchLayout =
    PytorchLayout { library: "timm", renames: &[], ignored_suffixes: &[] };

/// The kinds of weight file nml reads, by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WeightFile {
    Pickle,
    Safetensors,
}

impl WeightFile {
    fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("pth" | "pt" | "bin" | "ckpt") => Ok(Self::Pickle),
            Some("safetensors") => Ok(Self::Safetensors),
            _ => Err(NmlError::format(
                path.display().to_string(),
                "not a weight file nml reads: give a .pth, .pt, .bin or .ckpt (PyTorch) or a \
                 .safetensors file",
            )),
        }
    }
}

/// Loads the weights in `path`, written in `layout`, into `module`, refusing a file whose keys
/// or shapes do not fit: the message names the first missing, unexpected or misshapen keys (as
/// PyTorch names them), and leaves `module` as it was. A checkpoint that nests its state dict
/// under `state_dict` or `model`, or was saved from `DataParallel` (`module.` prefixes), is read
/// as well.
pub fn load_pytorch_weights<M: Module>(
    module: &mut M,
    path: &Path,
    layout: &PytorchLayout,
) -> Result<()> {
    let name = path.display().to_string();
    if !path.is_file() {
        return Err(NmlError::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    match WeightFile::of(path)? {
        WeightFile::Safetensors => {
            load_safetensors(module, SafetensorsStore::from_file(path), &name, layout)
        }
        #[cfg(target_arch = "wasm32")]
        WeightFile::Pickle => Err(pickles_native_only(&name)),
        #[cfg(not(target_arch = "wasm32"))]
        WeightFile::Pickle => load_pickle(module, path, &name, layout),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn load_pickle<M: Module>(
    module: &mut M,
    path: &Path,
    name: &str,
    layout: &PytorchLayout,
) -> Result<()> {
    let cannot =
        |e: &dyn std::fmt::Display| NmlError::format(name, format!("cannot read the weights: {e}"));
    let mut store = PytorchStore::from_file(path)
        .allow_partial(true)
        .validate(false)
        .map_indices_contiguous(false);
    let keys = store.keys().map_err(|e| cannot(&e))?;
    if let Some(top) = nesting_key(&keys) {
        store = store.with_top_level_key(top);
    }
    for (from, to) in to_nml_patterns(layout) {
        store = store.with_key_remapping(from, to);
    }
    // Loaded into a copy (its tensors are shared until written), so a misfit changes nothing;
    // misfits are collected, not raised, so the message can name the first few.
    let mut candidate = module.clone();
    let result = candidate.load_from(&mut store).map_err(|e| cannot(&e))?;
    check_fit(&result, layout).map_err(|message| NmlError::format(name, message))?;
    *module = candidate;
    Ok(())
}

/// [`load_pytorch_weights`] for the bytes of a `.safetensors` file (a file picked in the
/// browser); `name` names it in messages.
pub fn load_pytorch_safetensors<M: Module>(
    module: &mut M,
    bytes: Vec<u8>,
    name: &str,
    layout: &PytorchLayout,
) -> Result<()> {
    load_safetensors(module, SafetensorsStore::from_bytes(Some(bytes)), name, layout)
}

fn load_safetensors<M: Module>(
    module: &mut M,
    store: SafetensorsStore,
    name: &str,
    layout: &PytorchLayout,
) -> Result<()> {
    let mut store = store
        .with_from_adapter(PyTorchToBurnAdapter)
        .allow_partial(true)
        .validate(false)
        .skip_enum_variants(true);
    for (from, to) in to_nml_patterns(layout) {
        store = store.with_key_remapping(from, to);
    }
    let mut candidate = module.clone();
    let result = candidate
        .load_from(&mut store)
        .map_err(|e| NmlError::format(name, format!("cannot read the weights: {e}")))?;
    check_fit(&result, layout).map_err(|message| NmlError::format(name, message))?;
    *module = candidate;
    Ok(())
}

/// The encoder's weights as a safetensors file in `layout`'s keys (PyTorch's shapes: linear
/// weights `[out, in]`, norms `weight`/`bias`), with `metadata` in its header.
pub fn pytorch_safetensors<M: Module>(
    module: &M,
    layout: &PytorchLayout,
    metadata: &[(&str, String)],
) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true);
    for (pytorch, nml) in layout.renames {
        store = store.with_key_remapping(regex::escape(nml), *pytorch);
    }
    for (key, value) in metadata {
        store = store.metadata(*key, value.clone());
    }
    let failed = |e: &dyn std::fmt::Display| {
        NmlError::Invalid(format!("cannot write the weights in {}'s layout: {e}", layout.library))
    };
    module.save_into(&mut store).map_err(|e| failed(&e))?;
    store.get_bytes().map_err(|e| failed(&e))
}

/// The shapes of the tensors `keys` (as PyTorch names them) in a checkpoint, `None` for a key
/// it does not hold, read in one pass: how a loader learns the class count of a pretrained head
/// or the channels of a stem before building the model. Keys are found as loading finds them:
/// under a nesting `state_dict` or `model` (pickles) and behind `DataParallel`'s `module.`.
pub fn checkpoint_shapes(path: &Path, keys: &[&str]) -> Result<Vec<Option<Vec<usize>>>> {
    let name = path.display().to_string();
    let cannot = |e: &dyn std::fmt::Display| {
        NmlError::format(&name, format!("cannot read the weights: {e}"))
    };
    fn shapes<S: ModuleStore>(
        store: &mut S,
        top: &str,
        keys: &[&str],
    ) -> std::result::Result<Vec<Option<Vec<usize>>>, S::Error> {
        let present = store.keys()?;
        keys.iter()
            .map(|key| {
                let candidates = [format!("{top}{key}"), format!("{top}module.{key}")];
                match candidates.into_iter().find(|c| present.contains(c)) {
                    Some(full) => Ok(store.get_tensor(&full)?.map(|t| t.shape.to_vec())),
                    None => Ok(None),
                }
            })
            .collect()
    }
    match WeightFile::of(path)? {
        #[cfg(target_arch = "wasm32")]
        WeightFile::Pickle => Err(pickles_native_only(&name)),
        #[cfg(not(target_arch = "wasm32"))]
        WeightFile::Pickle => {
            let mut store = PytorchStore::from_file(path);
            let present = store.keys().map_err(|e| cannot(&e))?;
            let top = nesting_key(&present).map(|top| format!("{top}.")).unwrap_or_default();
            shapes(&mut store, &top, keys).map_err(|e| cannot(&e))
        }
        WeightFile::Safetensors => {
            shapes(&mut SafetensorsStore::from_file(path), "", keys).map_err(|e| cannot(&e))
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn pickles_native_only(name: &str) -> NmlError {
    NmlError::format(
        name,
        "PyTorch pickles are read by the native nml only; give a .safetensors file",
    )
}

/// `state_dict` or `model` when every key of a checkpoint sits under it (a training script's
/// `torch.save({"state_dict": ..., "epoch": ...})`). Only pickles nest, and they are read
/// natively only.
#[cfg(not(target_arch = "wasm32"))]
fn nesting_key(keys: &[String]) -> Option<&'static str> {
    ["state_dict", "model"].into_iter().find(|top| {
        let prefix = format!("{top}.");
        let nested = keys.iter().filter(|k| k.starts_with(&prefix)).count();
        // Other entries beside the nested dict (an epoch counter, optimiser state) are fine.
        nested > 0 && keys.iter().all(|k| k.starts_with(&prefix) || !k.contains('.'))
    })
}

/// `layout`'s renames towards nml as burn-store's regex rewrites, after dropping the `module.`
/// prefix `DataParallel` puts on every key.
fn to_nml_patterns(layout: &PytorchLayout) -> impl Iterator<Item = (String, &'static str)> {
    let renames = layout.renames.iter().map(|(pytorch, nml)| (regex::escape(pytorch), *nml));
    std::iter::once((r"^module\.".to_string(), "")).chain(renames)
}

/// The name PyTorch gives an nml path, for messages.
fn pytorch_key(path: &str, layout: &PytorchLayout) -> String {
    let key = layout
        .renames
        .iter()
        .fold(path.to_string(), |key, (pytorch, nml)| key.replace(nml, pytorch));
    key.replace(".gamma", ".weight").replace(".beta", ".bias")
}

/// A shape as PyTorch has it: burn-store's adapter holds linear weights transposed.
fn pytorch_shape(path: &str, dims: &[usize]) -> Vec<usize> {
    let mut dims = dims.to_vec();
    if path.ends_with(".weight") && dims.len() == 2 {
        dims.reverse();
    }
    dims
}

/// How many keys a message lists before "and N more".
const LISTED_KEYS: usize = 5;

fn listed(keys: &[String]) -> String {
    let mut text = keys.iter().take(LISTED_KEYS).cloned().collect::<Vec<_>>().join(", ");
    if keys.len() > LISTED_KEYS {
        text.push_str(&format!(" and {} more", keys.len() - LISTED_KEYS));
    }
    text
}

fn check_fit(result: &ApplyResult, layout: &PytorchLayout) -> std::result::Result<(), String> {
    let mut problems = Vec::new();
    if !result.errors.is_empty() {
        let errors: Vec<String> = result
            .errors
            .iter()
            .map(|error| match error {
                // Burn holds linear weights transposed, so say the shape in PyTorch's terms.
                ApplyError::ShapeMismatch { path, expected, found } => format!(
                    "`{}` is {:?}, this model's is {:?}",
                    pytorch_key(path, layout),
                    pytorch_shape(path, &found.to_vec()),
                    pytorch_shape(path, &expected.to_vec())
                ),
                other => other.to_string(),
            })
            .collect();
        problems.push(format!("weights that do not fit: {}", listed(&errors)));
    }
    if !result.missing.is_empty() {
        let mut missing: Vec<String> =
            result.missing.iter().map(|(path, _)| pytorch_key(path, layout)).collect();
        missing.sort();
        problems.push(format!("missing keys: {}", listed(&missing)));
    }
    let unexpected: Vec<String> = result
        .unused
        .iter()
        .filter(|key| !layout.ignored_suffixes.iter().any(|s| key.ends_with(s)))
        .cloned()
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!("unexpected keys: {}", listed(&unexpected)));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the checkpoint does not fit this model in {}'s layout ({})",
        layout.library,
        problems.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use burn::tensor::{Device, Tensor, TensorData};
    use safetensors::tensor::{Dtype, SafeTensors, TensorView};
    use serde::Deserialize;

    use crate::models::{Encoder, StandardModel};

    /// What scripts/make-pytorch-fixtures recorded from torchvision and timm.
    #[derive(Deserialize)]
    struct Fixture {
        classes: usize,
        input: [usize; 4],
        resnet18: Case,
        resnet50: Case,
        vit_ti16: Case,
    }

    #[derive(Deserialize)]
    struct Case {
        keys: Vec<(String, Vec<usize>)>,
        features: Vec<f32>,
        logits: Vec<f32>,
    }

    fn fixture() -> Fixture {
        serde_json::from_str(include_str!("testdata/pytorch-models.json")).unwrap()
    }

    fn testdata(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/models/testdata").join(name)
    }

    /// Tensor `k` of a state dict, as the fixture script's `formula` makes it.
    fn formula(k: usize, shape: &[usize], key: &str) -> Vec<f32> {
        let n: usize = shape.iter().product();
        let fan_in: usize = shape.iter().skip(1).product();
        (0..n)
            .map(|i| {
                let base = (0.7 * i as f64 + 1.3 * k as f64).sin();
                let value = if key.ends_with("running_var") {
                    1.0 + 0.25 * (base + 1.0)
                } else if key.ends_with("running_mean") || key.ends_with("bias") {
                    0.1 * base
                } else if shape.len() == 1 {
                    0.5 + 0.25 * base
                } else {
                    base * (1.0 / fan_in as f64).sqrt()
                };
                value as f32
            })
            .collect()
    }

    /// A torchvision checkpoint of the formula weights, as `save_file(model.state_dict())`
    /// writes it: PyTorch's keys and shapes, with the batch norms' `num_batches_tracked`.
    fn state_dict_bytes(case: &Case, prefix: &str, extra: &[&str]) -> Vec<u8> {
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (k, (key, shape)) in case.keys.iter().enumerate() {
            let bytes = formula(k, shape, key).iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((format!("{prefix}{key}"), Dtype::F32, shape.clone(), bytes));
            if let Some(bn) = key.strip_suffix(".running_var") {
                let counter = 100i64.to_le_bytes().to_vec();
                let key = format!("{prefix}{bn}.num_batches_tracked");
                tensors.push((key, Dtype::I64, vec![], counter));
            }
        }
        for key in extra {
            tensors.push((key.to_string(), Dtype::F32, vec![2], vec![0; 8]));
        }
        let views = tensors.iter().map(|(key, dtype, shape, bytes)| {
            (key.clone(), TensorView::new(*dtype, shape.clone(), bytes).unwrap())
        });
        safetensors::serialize(views, None).unwrap()
    }

    fn write_state_dict(dir: &tempfile::TempDir, case: &Case, extra: &[&str]) -> PathBuf {
        let path = dir.path().join("model.safetensors");
        std::fs::write(&path, state_dict_bytes(case, "", extra)).unwrap();
        path
    }

    fn images(shape: [usize; 4], device: &Device) -> Tensor<4> {
        let n: usize = shape.iter().product();
        let pixels = (0..n).map(|j| (0.5 + 0.5 * (0.05 * j as f64).sin()) as f32).collect();
        Tensor::from_data(TensorData::new(pixels, shape), device)
    }

    fn assert_close(got: Tensor<2>, want: &[f32], what: &str) {
        let got = got.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(got.len(), want.len(), "{what}");
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let worst = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f32::max);
        assert!(worst <= 1e-4 * scale, "{what}: off by {worst} (largest value {scale})");
    }

    /// torchvision's ResNet-18 and ResNet-50, given the same weights and images, compute what
    /// nml's do: the key layout, the shapes, and the forward pass (stem, pool, strides,
    /// bottlenecks, batch norm in inference) are torchvision's.
    #[test]
    fn torchvision_checkpoints_give_torchvisions_features_and_logits() {
        let fixture = fixture();
        let device = Device::flex();
        for (model, case) in [
            (StandardModel::Resnet18, &fixture.resnet18),
            (StandardModel::Resnet50, &fixture.resnet50),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let encoder = model.load_pytorch(&write_state_dict(&dir, case, &[]), &device).unwrap();
            assert_eq!(encoder.in_channels(), 3);
            let x = images(fixture.input, &device);
            assert_close(encoder.embed(x.clone()), &case.features, model.name());
            let logits = encoder.forward(x);
            assert_eq!(logits.dims()[1], fixture.classes);
            assert_close(logits, &case.logits, model.name());
        }
    }

    /// timm's ViT-Ti/16 (at 64 pixels: 16 patches), given the same weights and images, computes
    /// what nml's does: fused `qkv` split into heads as timm splits it, the class token and
    /// position embeddings, LayerNorm eps 1e-6, erf GELU; the image size is read from
    /// `pos_embed`.
    #[test]
    fn timm_checkpoints_give_timms_features_and_logits() {
        let fixture = fixture();
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let path = write_state_dict(&dir, &fixture.vit_ti16, &[]);
        let encoder = StandardModel::VitTi16.load_pytorch(&path, &device).unwrap();
        let x = images(fixture.input, &device);
        assert_close(encoder.embed(x.clone()), &fixture.vit_ti16.features, "vit-ti16");
        assert_close(encoder.forward(x), &fixture.vit_ti16.logits, "vit-ti16");
        let bytes = encoder.to_pytorch_safetensors(&[]).unwrap();
        let mut names: Vec<String> = SafeTensors::deserialize(&bytes)
            .unwrap()
            .names()
            .into_iter()
            .map(String::from)
            .collect();
        let mut want: Vec<String> = fixture.vit_ti16.keys.iter().map(|(k, _)| k.clone()).collect();
        names.sort();
        want.sort();
        assert_eq!(names, want, "export writes timm's keys back");
        let err = StandardModel::VitS16.load_pytorch(&path, &device).unwrap_err().to_string();
        assert!(err.contains("does not fit") && err.contains("timm's layout"), "{err}");
        let first =
            "`patch_embed.proj.weight` is [192, 3, 16, 16], this model's is [384, 3, 16, 16]";
        assert!(err.contains(first), "{err}");
        assert!(err.contains("more") && err.len() < 1000, "the first few, not all: {err}");
    }

    /// Export writes back exactly the state dict that was loaded (less the batch-norm
    /// counters, which torchvision's `load_state_dict` fills in), so torchvision loads it.
    #[test]
    fn export_writes_back_the_torchvision_state_dict() {
        let case = fixture().resnet18;
        let dir = tempfile::tempdir().unwrap();
        let encoder = StandardModel::Resnet18
            .load_pytorch(&write_state_dict(&dir, &case, &[]), &Device::flex())
            .unwrap();
        let bytes = encoder.to_pytorch_safetensors(&[("format", "pt".into())]).unwrap();
        let exported = SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<String> = exported.names().into_iter().map(String::from).collect();
        let mut want: Vec<String> = case.keys.iter().map(|(k, _)| k.clone()).collect();
        names.sort();
        want.sort();
        assert_eq!(names, want);
        for (k, (key, shape)) in case.keys.iter().enumerate() {
            let tensor = exported.tensor(key).unwrap();
            assert_eq!((tensor.dtype(), tensor.shape()), (Dtype::F32, &shape[..]), "{key}");
            let values: Vec<f32> = tensor
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            assert_eq!(values, formula(k, shape, key), "{key}");
        }
    }

    /// A checkpoint of another architecture, another head, with stray keys or of another
    /// format is refused, naming the keys as PyTorch does and the file.
    #[test]
    fn checkpoints_that_do_not_fit_are_refused_by_key() {
        let case = fixture().resnet18;
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let path = write_state_dict(&dir, &case, &[]);
        let err = StandardModel::Resnet34.load_pytorch(&path, &device).unwrap_err().to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("missing keys: layer1.2."),
            "{err}"
        );
        let mut wide_head = StandardModel::Resnet18.init(3, 224, 1000, 0, &device);
        let err = wide_head.load_pytorch(&path).unwrap_err().to_string();
        assert!(err.contains("fc.weight") || err.contains("fc.bias"), "{err}");
        let stray = write_state_dict(&dir, &case, &["layer5.0.conv1.weight"]);
        let err = StandardModel::Resnet18.load_pytorch(&stray, &device).unwrap_err().to_string();
        assert!(err.contains("unexpected keys: layer5.0.conv1.weight"), "{err}");
        let other = dir.path().join("model.onnx");
        std::fs::write(&other, b"onnx").unwrap();
        let err = StandardModel::Resnet18.load_pytorch(&other, &device).unwrap_err().to_string();
        assert!(err.contains("model.onnx") && err.contains(".safetensors"), "{err}");
        let garbage = dir.path().join("garbage.safetensors");
        std::fs::write(&garbage, b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header").unwrap();
        let err = StandardModel::Resnet18.load_pytorch(&garbage, &device).unwrap_err().to_string();
        assert!(err.contains("garbage.safetensors"), "{err}");
        // Saved from DataParallel: every key behind `module.`, read for its shapes and weights.
        let parallel = dir.path().join("parallel.safetensors");
        std::fs::write(&parallel, state_dict_bytes(&case, "module.", &[])).unwrap();
        let loaded = StandardModel::Resnet18.load_pytorch(&parallel, &device).unwrap();
        assert_eq!(loaded.feature_dim(), 512);
        let nml_small =
            Encoder::ResNet(crate::models::ResNetConfig::new(vec![4], 2).init(0, &device));
        assert!(
            nml_small
                .to_pytorch_safetensors(&[])
                .unwrap_err()
                .to_string()
                .contains("no PyTorch counterpart")
        );
    }

    /// A real `torch.save` pickle of a training script's checkpoint (nested under
    /// `state_dict`, `module.` prefixes, an epoch counter beside it) is read through all three,
    /// and refused with the keys it lacks.
    #[test]
    fn a_torch_save_checkpoint_is_read_through_nesting_and_prefixes() {
        let path = testdata("torchvision-resnet18-partial.pth");
        let keys = ["fc.weight", "conv1.weight", "layer1.0.conv1.weight"];
        let shapes = super::checkpoint_shapes(&path, &keys).unwrap();
        assert_eq!(shapes, [Some(vec![2, 512]), Some(vec![64, 3, 7, 7]), None]);
        let err =
            StandardModel::Resnet18.load_pytorch(&path, &Device::flex()).unwrap_err().to_string();
        assert!(
            err.contains("torchvision-resnet18-partial.pth") && err.contains("missing keys: bn1."),
            "{err}"
        );
        assert!(!err.contains("unexpected"), "{err}");
    }
}
