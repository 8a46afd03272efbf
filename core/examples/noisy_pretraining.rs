//! The paper's question in one small program: pre-train the same ResNet on clean and on 20%
//! noisy MNIST labels, then compare their frozen features on held-out MNIST (in domain) and
//! on the same digits rotated by 30 degrees (out of domain): spectra, a linear probe and NMTune. One seed and a small
//! encoder: an illustration of the API, not a finding.
//!
//! ```sh
//! cargo run --release -p nml-core --example noisy_pretraining
//! ```
//!
//! Uses only nml-core's public API and the starter digits built into it.

use nml_core::pretrain::{ModelShape, PretrainConfig, pretrain};
use nml_core::spectrum::measure;
use nml_core::{
    Device, GramPrecision, ImageSource, LabelNoise, Method, OptimizerConfig, Preprocess, Result,
    TuneConfig, tune,
};

fn main() -> Result<()> {
    let device = Device::flex();
    let load = |source: &str| source.parse::<ImageSource>()?.load();
    let pretraining = load("starter:mnist@0..3000")?;
    let (train, test) = (load("starter:mnist@6000..7000")?, load("starter:mnist@8000..9000")?);
    let ood = load("starter:mnist@8000..9000|rotate=30")?;

    println!("noise  SVE (ID)  -ln LSVR (OOD)    LP: ID     OOD  NMTune: ID     OOD");
    for ratio in [0.0, 0.2] {
        let config = PretrainConfig {
            model: ModelShape::Resnet { widths: vec![16, 32, 64], blocks_per_stage: 1 },
            image_size: 14,
            epochs: 4,
            batch_size: 64,
            optimizer: OptimizerConfig::Adamw { lr: 5e-3, weight_decay: 5e-4 },
            noise: (ratio > 0.0).then_some(LabelNoise::Symmetric { ratio }),
            ..PretrainConfig::default()
        };
        let run = pretrain(&pretraining, &config, None, &device, &mut ())?;
        let features = |images, name| run.model.extract(images, &config.input(), name, &device);
        let (f_train, f_test, f_ood) =
            (features(&train, "train")?, features(&test, "test")?, features(&ood, "rotated")?);
        let sve = measure(&f_test, Preprocess::Paper, GramPrecision::Auto, &device)?.metrics.sve;
        let lsvr =
            measure(&f_ood, Preprocess::Paper, GramPrecision::Auto, &device)?.metrics.lsvr_neglog;
        let mut row = format!("{:>4.0}%  {sve:>8.4}  {lsvr:>14.4}", ratio * 100.0);
        for method in [Method::Lp, Method::Nmtune] {
            let config = TuneConfig { epochs: 10, ..TuneConfig::for_method(method) };
            let ood = [("rotated".to_string(), f_ood.clone())];
            let report = tune(&f_train, &f_test, &ood, &config, &device, &mut ())?.report;
            row += &format!(
                "  {:>6.2}%  {:>6.2}%",
                report.accuracy * 100.0,
                report.ood["rotated"] * 100.0
            );
        }
        println!("{row}");
    }
    Ok(())
}
