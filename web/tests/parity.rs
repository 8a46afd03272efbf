//! Shared by the Node and browser test binaries: the page's tuning on the demo features gives
//! the numbers `nml tune` gives natively on the CPU backend (recorded in parity-native.json,
//! which a native workflow test keeps honest).

use nml_core::FeatureSet;
use nml_core::device::ComputeDevice;
use nml_core::tune::{Method, TuneConfig};
use nml_web::analysis::{TuneJob, TuneResult, tune};
use serde_json::Value;

const TRAIN: &[u8] = include_bytes!("../demo/noise30-train.safetensors");
const TEST: &[u8] = include_bytes!("../demo/noise30-test.safetensors");
const OOD: &[u8] = include_bytes!("../demo/noise30-rotated-30.safetensors");
const NATIVE: &str = include_str!("parity-native.json");

/// The configuration both sides run: `nml tune --method nmtune --epochs 5 --seed 0`.
pub fn parity_job() -> TuneJob {
    TuneJob {
        config: TuneConfig { epochs: 5, seed: 0, ..TuneConfig::for_method(Method::Nmtune) },
        train: FeatureSet::from_safetensors(TRAIN, "noise30-train").unwrap(),
        test: FeatureSet::from_safetensors(TEST, "noise30-test").unwrap(),
        ood: vec![(
            "rotated-30".into(),
            FeatureSet::from_safetensors(OOD, "noise30-rotated-30").unwrap(),
        )],
    }
}

pub fn check_against_native(result: &TuneResult) {
    let native: Value = serde_json::from_str(NATIVE).unwrap();
    let close = |what: &str, ours: f64, theirs: f64, tolerance: f64| {
        assert!((ours - theirs).abs() <= tolerance, "{what}: WASM {ours} vs native {theirs}");
    };
    // Accuracy: at most 2 of the 1,000 images may fall differently (summation order differs
    // between the native SIMD kernels and WASM's scalar ones).
    close("ID accuracy", result.report.accuracy, native["accuracy"].as_f64().unwrap(), 0.002);
    close(
        "OOD accuracy",
        result.report.ood["rotated-30"],
        native["ood"]["rotated-30"].as_f64().unwrap(),
        0.002,
    );
    for (ours, theirs) in result.report.history.iter().zip(native["history"].as_array().unwrap()) {
        close(
            &format!("loss at epoch {}", ours.epoch),
            ours.loss,
            theirs["loss"].as_f64().unwrap(),
            1e-4 * ours.loss.abs().max(1.0),
        );
    }
    assert_eq!(result.report.history.len(), 5);
    assert_eq!(result.after.len(), 2, "spectra after the transform: test and OOD");
}

/// Runs the parity job on `device` and checks it against the native numbers.
pub async fn run_parity(device: &ComputeDevice) -> TuneResult {
    let result = tune(&parity_job(), device, &mut ()).await.unwrap();
    assert_eq!(result.report.backend, device.description);
    check_against_native(&result);
    result
}
