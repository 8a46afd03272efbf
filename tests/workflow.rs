//! The `nml` binary end to end on the real starter data, checked against the core library
//! reading the same files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nml_core::data::{TextSource, npy_file};
use nml_core::study::StudySuite;
use nml_core::{FeatureSet, ImageSet};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `nml` binary cargo built for this test.
fn nml() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nml"))
}

fn run(args: &[&str]) -> Output {
    let out = nml().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "nml {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nml-workflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A feature set as the command line names it: `set.safetensors` or `features.npy,labels.npy`.
fn load_feature_set(spec: &str) -> nml_core::Result<FeatureSet> {
    match spec.split_once(',') {
        Some((f, l)) => FeatureSet::read_npy(Path::new(f), Path::new(l)),
        None => FeatureSet::read(Path::new(spec)),
    }
}

fn save_feature_set(set: &FeatureSet, spec: &str) -> nml_core::Result<()> {
    match spec.split_once(',') {
        Some((f, l)) => set.write_npy(Path::new(f), Path::new(l)),
        None => set.write(Path::new(spec)),
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `data/fetched/SET`, which `scripts/fetch-data` brings: `None` (the test skips, saying so)
/// when it is missing, unless NML_REQUIRE_FETCHED says it must be there.
fn fetched(set: &str) -> Option<PathBuf> {
    let dir = repo().join("data/fetched").join(set);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("NML_REQUIRE_FETCHED").is_none(),
        "NML_REQUIRE_FETCHED is set but {} is missing",
        dir.display()
    );
    eprintln!("skipped: {} is missing (run scripts/fetch-data)", dir.display());
    None
}

fn digits_idx() -> (PathBuf, PathBuf) {
    let dir = repo().join("data/starter");
    (
        dir.join("sklearn-digits-images-idx3-ubyte.gz"),
        dir.join("sklearn-digits-labels-idx1-ubyte.gz"),
    )
}

#[test]
fn export_spectrum_noise_tune_predict() {
    let dir = scratch("main");
    let (images, labels) = digits_idx();
    let all = dir.join("digits.safetensors");
    run(&[
        "export",
        "--idx-images",
        &s(&images),
        "--idx-labels",
        &s(&labels),
        "--output",
        &s(&all),
        "--domain",
        "sklearn",
    ]);

    // The binary wrote what the library reads from the same IDX files.
    let expected = ImageSet::read_idx(&images, &labels).unwrap().pixel_features().unwrap();
    let exported = load_feature_set(&s(&all)).unwrap();
    assert_eq!((exported.features(), exported.labels()), (expected.features(), expected.labels()));
    assert_eq!(exported.domain(), Some("sklearn"));

    // Round trip through a .npy pair.
    let pair = format!("{},{}", s(&dir.join("f.npy")), s(&dir.join("l.npy")));
    run(&["export", "--input", &s(&all), "--output", &pair]);
    assert_eq!(load_feature_set(&pair).unwrap().features(), expected.features());

    // Spectrum: both forms give the same numbers; JSON has the documented fields; plots exist.
    let json = dir.join("spectrum.json");
    let png = dir.join("spectrum.png");
    run(&["spectrum", &s(&all), &pair, "--out", &s(&json), "--plot", &s(&png), "--backend", "cpu"]);
    let reports: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let reports = reports.as_array().unwrap();
    let fields = ["mode", "n", "d", "sve", "lsvr_ratio", "lsvr_neglog", "rankme", "alpha_req"];
    for field in
        fields.into_iter().chain(["nesum", "condition_number", "retained", "singular_values"])
    {
        assert!(reports[0].get(field).is_some(), "missing {field}");
    }
    assert_eq!(reports[0]["sve"], reports[1]["sve"]);
    let rankme = reports[0]["rankme"].as_f64().unwrap();
    assert!((rankme - reports[0]["sve"].as_f64().unwrap().exp()).abs() < 1e-9 * rankme);
    // A features .npy alone: the same spectrum, no labels needed.
    let features_only = pair.split_once(',').unwrap().0;
    let bare = dir.join("bare.json");
    run(&["spectrum", features_only, "--out", &s(&bare), "--backend", "cpu"]);
    let bare: serde_json::Value = serde_json::from_slice(&std::fs::read(&bare).unwrap()).unwrap();
    assert_eq!((&bare["sve"], &bare["alpha_req"]), (&reports[1]["sve"], &reports[1]["alpha_req"]));
    let vector = dir.join("vector.npy");
    std::fs::write(&vector, npy_file::write_f32(&[4], &[1.0, 2.0, 3.0, 4.0])).unwrap();
    let not_2d = nml().args(["spectrum", &s(&vector)]).output().unwrap();
    let err = String::from_utf8_lossy(&not_2d.stderr);
    assert!(!not_2d.status.success() && err.contains("vector.npy") && err.contains("2-D"), "{err}");
    // Compare: a set against itself in its other form is one geometry; other rows are refused.
    let compared = dir.join("compare.json");
    let angles = dir.join("angles.svg");
    run(&["compare", &s(&all), &pair, "--k", "5", "--out", &s(&compared), "--plot", &s(&angles)]);
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&compared).unwrap()).unwrap();
    assert!((c["linear_cka"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{c}");
    assert!(c["largest_angle"].as_f64().unwrap() < 1e-3, "{c}");
    assert_eq!(c["principal_angles"].as_array().unwrap().len(), 5);
    assert!(String::from_utf8(std::fs::read(&angles).unwrap()).unwrap().contains("<svg"));
    let d = reports[0]["d"].as_u64().unwrap() as usize;
    let two_rows = dir.join("two-rows.npy");
    std::fs::write(&two_rows, npy_file::write_f32(&[2, d], &vec![1.0; 2 * d])).unwrap();
    let refused = nml().args(["compare", &s(&all), &s(&two_rows)]).output().unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("two-rows.npy has 2"), "{err}");
    assert_eq!(reports[0]["mode"], "paper");
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    let svg = dir.join("spectrum.svg");
    run(&["spectrum", &s(&all), "--plot", &s(&svg), "--mode", "raw", "--backend", "cpu"]);
    assert!(String::from_utf8(std::fs::read(&svg).unwrap()).unwrap().contains("<svg"));

    // Noise: the realised rate is printed and exact.
    let noisy = dir.join("noisy.npy");
    let out = run(&[
        "noise",
        "--labels",
        &s(&dir.join("l.npy")),
        "--kind",
        "symmetric",
        "--ratio",
        "0.2",
        "--seed",
        "3",
        "--out",
        &s(&noisy),
        "--mask",
        &s(&dir.join("mask.npy")),
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let n = expected.n();
    let changed = (0.2 * n as f64).round() as usize;
    assert!(stdout.contains(&format!("({changed} of {n} labels changed)")), "{stdout}");
    let noisy_labels = npy_file::read_i64(&std::fs::read(&noisy).unwrap(), "noisy").unwrap().data;
    let differing =
        noisy_labels.iter().zip(expected.labels()).filter(|(a, b)| **a != i64::from(**b)).count();
    assert_eq!(differing, changed);

    // Tune on a split, save the head, predict with it: same accuracy as the report.
    let (train, test) = expected.stratified_split(0.3, 0).unwrap();
    let (train_path, test_path) =
        (s(&dir.join("train.safetensors")), s(&dir.join("test.safetensors")));
    save_feature_set(&train, &train_path).unwrap();
    save_feature_set(&test, &test_path).unwrap();
    let (report, head) = (dir.join("report.json"), dir.join("head.safetensors"));
    let config = dir.join("cfg.toml");
    std::fs::write(&config, "epochs = 3\nw_svd = 0.002\n").unwrap();
    run(&[
        "tune",
        "--train",
        &train_path,
        "--test",
        &test_path,
        "--ood",
        &format!("copy={test_path}"),
        "--method",
        "nmtune",
        "--config",
        &s(&config),
        "--lr",
        "0.002",
        "--report",
        &s(&report),
        "--save",
        &s(&head),
        "--backend",
        "cpu",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    for field in ["method", "accuracy", "ood", "seconds", "backend", "seed", "config", "spectra"] {
        assert!(r.get(field).is_some(), "missing {field}");
    }
    assert_eq!(
        (r["config"]["epochs"].as_u64(), r["config"]["w_svd"].as_f64(), r["config"]["lr"].as_f64()),
        (Some(3), Some(0.002), Some(0.002))
    );
    assert_eq!(r["ood"]["copy"], r["accuracy"]);
    let accuracy = r["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "{accuracy}");
    let out = run(&[
        "predict",
        "--head",
        &s(&head),
        "--features",
        &test_path,
        "--out",
        &s(&dir.join("pred.npy")),
        "--backend",
        "cpu",
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(&format!("accuracy: {:.2}%", accuracy * 100.0)), "{stdout}");

    // The k-NN probe: accuracies from the same command, nothing trained or saved.
    let knn_report = dir.join("knn.json");
    let knn = ["tune", "--train", &train_path, "--test", &test_path, "--method", "knn"];
    run(&[&knn[..], &["--neighbours", "5", "--report", &s(&knn_report), "--backend", "cpu"]]
        .concat());
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&knn_report).unwrap()).unwrap();
    assert_eq!((r["method"].as_str(), r["config"]["neighbours"].as_u64()), (Some("knn"), Some(5)));
    assert!(r["accuracy"].as_f64().unwrap() > 0.8, "{r}");
    let refused = nml().args([&knn[..], &["--save", &s(&dir.join("knn-head"))]].concat()).output();
    let err = String::from_utf8(refused.unwrap().stderr).unwrap();
    assert!(err.contains("--save does not apply to --method knn"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_fail_cleanly_and_write_nothing() {
    let dir = scratch("bad");
    let bad = dir.join("bad.npy");
    std::fs::write(&bad, b"\x93NUMPY\x01\x00garbage").unwrap();
    let out_json = dir.join("out.json");
    let pair = format!("{},{}", s(&bad), s(&bad));
    let out = nml()
        .args(["spectrum", &pair, "--out", &s(&out_json), "--backend", "cpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(&format!("error: {}: not a valid .npy file", s(&bad))), "{stderr}");
    assert!(!out_json.exists());

    let cfg = dir.join("cfg.toml");
    std::fs::write(&cfg, "epochz = 3\n").unwrap();
    let (images, labels) = digits_idx();
    let all = s(&dir.join("d.safetensors"));
    run(&["export", "--idx-images", &s(&images), "--idx-labels", &s(&labels), "--output", &all]);
    let out = nml()
        .args(["tune", "--train", &all, "--test", &all, "--method", "lp", "--config", &s(&cfg)])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cfg.toml: unknown setting `epochz`"), "{stderr}");

    let out = nml()
        .args([
            "tune",
            "--train",
            &all,
            "--test",
            &s(&dir.join("missing.safetensors")),
            "--method",
            "lp",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stderr).unwrap().contains("missing.safetensors: No such file"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Byte-level comparison of the tensors (not the header order) of two model files.
fn same_tensors(a: &Path, b: &Path) -> bool {
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let (ta, tb) = (
        safetensors::SafeTensors::deserialize(&a).unwrap(),
        safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    ta.names().len() == tb.names().len()
        && ta
            .names()
            .iter()
            .all(|n| tb.tensor(n).is_ok_and(|t| t.data() == ta.tensor(n).unwrap().data()))
}

/// A pre-training run killed after its first checkpoint and resumed with `--resume` ends with the
/// weights of an uninterrupted run (CPU backend).
#[test]
fn killed_pretraining_resumes_to_the_same_weights() {
    let dir = scratch("resume");
    let common = [
        "--data",
        "starter:mnist@0..1200",
        "--epochs",
        "3",
        "--widths",
        "8,16",
        "--image-size",
        "14",
        "--noise-ratio",
        "0.2",
        "--backend",
        "cpu",
    ];
    let straight = dir.join("straight");
    run(&[&["pretrain", "--out", &s(&straight)][..], &common].concat());

    let broken = dir.join("broken");
    let mut child =
        nml().args([&["pretrain", "--out", &s(&broken)][..], &common].concat()).spawn().unwrap();
    let first = broken.join("optimizer-epoch1.bpk");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !(first.exists() && broken.join("model.safetensors").exists()) {
        assert!(std::time::Instant::now() < deadline, "no checkpoint after 120 s");
        assert!(child.try_wait().unwrap().is_none(), "run ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!broken.join("optimizer-epoch3.bpk").exists(), "killed too late to test anything");

    // Without --resume an unfinished run is not touched.
    let refused =
        nml().args([&["pretrain", "--out", &s(&broken)][..], &common].concat()).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));

    run(&[&["pretrain", "--out", &s(&broken), "--resume"][..], &common].concat());
    assert!(
        same_tensors(&straight.join("model.safetensors"), &broken.join("model.safetensors")),
        "resumed weights differ"
    );

    // The model extracts features with the pre-training's image size.
    let feats = dir.join("f.safetensors");
    run(&[
        "extract",
        "--checkpoint",
        &s(&broken.join("model.safetensors")),
        "--data",
        "starter:opencv-digits@0..50",
        "--out",
        &s(&feats),
        "--backend",
        "cpu",
    ]);
    let set = load_feature_set(&s(&feats)).unwrap();
    assert_eq!((set.n(), set.d(), set.num_classes()), (50, 16, 10));
}

/// Data-parallel pre-training on two CPU replicas writes the run directory a one-device run
/// writes (so either resumes the other), in mixed precision too, and extracts like any run.
#[test]
fn two_device_pretraining_from_the_command_line() {
    let dir = scratch("devices");
    let out = dir.join("run");
    let common = [
        "--data",
        "starter:mnist@0..800",
        "--epochs",
        "2",
        "--widths",
        "8,16",
        "--image-size",
        "14",
        "--out",
    ];
    let bad = nml()
        .args([&["pretrain", "--devices", "cpu,tpu:3"][..], &common, &[&s(&out)]].concat())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown device \"tpu:3\""));

    let done = run(&[
        &["pretrain", "--devices", "cpu,cpu", "--precision", "bf16"][..],
        &common,
        &[&s(&out)],
    ]
    .concat());
    assert!(String::from_utf8_lossy(&done.stderr).contains("batches split across them"));
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["model.safetensors", "optimizer-epoch2.bpk", "pretrain.json"],
        "the one-device layout"
    );
    // A finished run is reused by a one-device call.
    let again =
        run(&[&["pretrain", "--backend", "cpu", "--precision", "bf16"][..], &common, &[&s(&out)]]
            .concat());
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 epochs trained now"));
    let feats = dir.join("f.safetensors");
    run(&[
        "extract",
        "--checkpoint",
        &s(&out.join("model.safetensors")),
        "--data",
        "starter:mnist@9000..9100",
        "--out",
        &s(&feats),
        "--backend",
        "cpu",
    ]);
    let set = load_feature_set(&s(&feats)).unwrap();
    assert_eq!((set.n(), set.d()), (100, 16));

    // The sweep pre-trains on the same two devices, and a rerun reuses the finished run.
    let suite = dir.join("suite.toml");
    std::fs::write(
        &suite,
        r#"
ratios = [0.2]
seeds = [0]
noise_kind = "symmetric"
pretrain_data = "starter:mnist@0..800"

[pretrain]
model = { kind = "resnet", widths = [8, 16], blocks_per_stage = 1 }
image_size = 14
epochs = 1
batch_size = 64
seed = 0
optimizer = { kind = "adamw", lr = 0.005, weight_decay = 0.0005 }
augment = { pad = 1, flip = false }

[tune]
methods = ["lp"]
epochs = 2
fractions = [1.0]

[[task]]
name = "mnist"
train = "starter:mnist@800..1100"
test = "starter:mnist@1100..1300"
"#,
    )
    .unwrap();
    let sweep_out = dir.join("sweep");
    let sweep = ["sweep", "--suite", &s(&suite), "--out", &s(&sweep_out), "--devices", "cpu,cpu"];
    let first = String::from_utf8_lossy(&run(&sweep).stderr).to_string();
    assert!(
        first.contains("pre-training on cpu: flex + cpu: flex")
            && first.contains("(1 epochs now, 0 reused)"),
        "{first}"
    );
    assert!(sweep_out.join("runs/noise20-seed0/model.safetensors").is_file());
    let second = String::from_utf8_lossy(&run(&sweep).stderr).to_string();
    assert!(second.contains("(0 epochs now, 1 reused)"), "{second}");
}

/// A small sweep writes every output, and a second run reuses every finished step.
#[test]
fn sweep_writes_tables_and_plots_and_reuses_finished_steps() {
    let dir = scratch("sweep");
    let suite = dir.join("suite.toml");
    std::fs::write(
        &suite,
        r#"
ratios = [0.0, 0.3]
seeds = [0]
noise_kind = "symmetric"
pretrain_data = "starter:mnist@0..600"
objectives = ["supervised", "contrastive"]

[pretrain]
model = { kind = "vit", patch_size = 7, dim = 16, depth = 1, heads = 2, mlp_ratio = 2 }
image_size = 14
epochs = 1
batch_size = 64
seed = 0
optimizer = { kind = "adamw", lr = 0.005, weight_decay = 0.0005 }
augment = { pad = 1, flip = false }

[tune]
methods = ["lp", "nmtune"]
epochs = 2
fractions = [0.5, 1.0]

[finetune]
methods = ["lora", "ft"]
epochs = 1

[[task]]
name = "mnist"
train = "starter:mnist@600..900"
test = "starter:mnist@900..1100"
ood = { rotated = "starter:mnist@900..1100|rotate=30" }
"#,
    )
    .unwrap();
    let out = dir.join("out");
    let sweep = [
        "sweep",
        "--suite",
        &s(&suite),
        "--out",
        &s(&out),
        "--backend",
        "cpu",
        "--finetune",
        "--wise-alpha",
        "0,1",
    ];
    let first = run(&sweep);
    for file in [
        "results.json",
        "results.csv",
        "summary.md",
        "id_accuracy_vs_noise.png",
        "ood_accuracy_vs_noise.svg",
        "sve_vs_noise.png",
        "lsvr_vs_noise.svg",
        "accuracy_vs_fraction.png",
        "gap_vs_noise.png",
        "gap_vs_noise.svg",
        "accuracy_vs_sve.png",
        "accuracy_vs_alpha_req.svg",
        "accuracy_vs_condition_number.png",
        "geometry.csv",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    // 2 objectives x 2 ratios x (2 heads x 2 fractions + 2 fine-tunings x (itself + 2 WiSE-FT
    // mixes)) x (test + 1 OOD set)
    assert_eq!(csv.lines().count(), 1 + 80, "{csv}");
    assert_eq!(csv.lines().filter(|l| l.contains(",lora,1,")).count(), 8, "{csv}");
    // WiSE-FT at 1 is the fine-tuned model itself (FT: no adapters to merge).
    let accuracy_of = |method: &str| -> Vec<String> {
        csv.lines()
            .filter(|l| l.split(',').nth(6) == Some(method))
            .map(|l| l.split(',').nth(8).unwrap().to_string())
            .collect()
    };
    assert_eq!(accuracy_of("ft-wise1").len(), 8);
    assert_eq!(accuracy_of("ft-wise1"), accuracy_of("ft"));
    assert_eq!(accuracy_of("lora-wise0").len(), 8);
    // Each noisy encoder against the clean one of its seed: 2 objectives x 2 evaluations.
    let geometry = std::fs::read_to_string(out.join("geometry.csv")).unwrap();
    assert_eq!(geometry.lines().count(), 1 + 4, "{geometry}");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary
            .lines()
            .next()
            .unwrap()
            .contains("one seed, so every number below is an observation"),
        "a one-seed summary says so first: {summary}"
    );
    let figure4 = summary.split("Figure 4").nth(1).expect("the accuracy-change table");
    for row in ["| lp | ID | ", "| lora | OOD | ", "| ft | ID | "] {
        let line = figure4.lines().find(|l| l.starts_with(row));
        let line = line.unwrap_or_else(|| panic!("{row} missing from {figure4}"));
        let cell = line[row.len()..].trim_end_matches(" |");
        assert!(cell.parse::<f64>().is_ok() && cell.starts_with(['+', '-']), "{line}");
    }
    assert!(!figure4.contains("What holds"), "one seed holds nothing: {figure4}");
    assert!(csv.contains("\ncontrastive,0.3,") && csv.contains("\nsupervised,0,"), "{csv}");
    assert!(csv.lines().next().unwrap().contains(",rankme,alpha_req,nesum,condition_number,"));
    assert!(summary.contains("## How far noise moves the features' geometry"), "{summary}");
    let predicts = summary.split("Which spectral metric predicts transfer").nth(1).unwrap();
    for line in ["| SVE | 4 |", "| -ln LSVR | 4 |", "Best pooled: "] {
        assert!(predicts.contains(line), "{line} missing from {predicts}");
    }
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert!(
        results["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| { r["accuracy"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)) })
    );

    let second = run(&sweep);
    let log = String::from_utf8_lossy(&second.stderr);
    assert_eq!(log.matches("(0 epochs now, 1 reused)").count(), 4, "{log}");
    assert_eq!(
        std::fs::read_to_string(out.join("results.csv")).unwrap(),
        csv,
        "a rerun must give the same numbers"
    );
    let _ = first;
}

/// `nml tune` on images through a pre-trained ViT: LoRA saves only adapters and head, the merged
/// export extracts like a pre-trained model, LP reads the same task, and misuse is refused.
#[test]
fn lora_and_fine_tuning_from_the_command_line() {
    let dir = scratch("finetune");
    let vit = dir.join("vit");
    run(&[
        "pretrain",
        "--data",
        "starter:mnist@0..2000",
        "--model",
        "vit",
        "--image-size",
        "14",
        "--epochs",
        "2",
        "--out",
        &s(&vit),
        "--backend",
        "cpu",
    ]);
    let checkpoint = s(&vit.join("model.safetensors"));
    let suite = dir.join("suite.toml");
    let quick = std::fs::read_to_string(repo().join("native/suites/quick.toml")).unwrap();
    // The quick suite's tasks, on fewer images.
    std::fs::write(
        &suite,
        quick.replace("@6000..8000", "@6000..7000").replace("@8000..10000", "@8000..8300"),
    )
    .unwrap();
    let (report, adapters, merged) =
        (dir.join("lora.json"), dir.join("adapters.safetensors"), dir.join("merged.safetensors"));
    let out = run(&[
        "tune",
        "--method",
        "lora",
        "--checkpoint",
        &checkpoint,
        "--task",
        "mnist",
        "--suite",
        &s(&suite),
        "--epochs",
        "3",
        "--lr",
        "0.01",
        "--lora-rank",
        "4",
        "--report",
        &s(&report),
        "--save",
        &s(&adapters),
        "--export",
        &s(&merged),
        "--backend",
        "cpu",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("accuracy (OOD rotated-30)") && stdout.contains("peak memory"),
        "{stdout}"
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    // rank 4 on fc1 (64x256) and fc2 (256x64) of 4 blocks, and a 64x10 head with bias.
    let trainable = 4 * 2 * 4 * (64 + 256) + 64 * 10 + 10;
    assert_eq!(r["params"]["trainable"].as_u64(), Some(trainable as u64), "{r}");
    assert!(r["accuracy"].as_f64().is_some_and(|a| a > 0.2), "{r}");
    assert_eq!(r["ood"].as_object().unwrap().len(), 3, "{r}");
    let saved = std::fs::read(&adapters).unwrap();
    let saved = safetensors::SafeTensors::deserialize(&saved).unwrap();
    let elements: usize =
        saved.tensors().iter().map(|(_, t)| t.shape().iter().product::<usize>()).sum();
    assert_eq!(elements, trainable, "the adapter file holds exactly what trained");

    // The merged model extracts features like any checkpoint; the adapter file alone cannot.
    let feats = dir.join("f.safetensors");
    run(&[
        "extract",
        "--checkpoint",
        &s(&merged),
        "--data",
        "starter:mnist@9000..9050",
        "--out",
        &s(&feats),
        "--backend",
        "cpu",
    ]);
    assert_eq!(load_feature_set(&s(&feats)).unwrap().d(), 64);
    let refused = nml()
        .args([
            "extract",
            "--checkpoint",
            &s(&adapters),
            "--data",
            "starter:mnist@0..10",
            "--out",
            &s(&feats),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--export"));

    // A linear probe through the same checkpoint, on images given directly.
    let lp = run(&[
        "tune",
        "--method",
        "lp",
        "--checkpoint",
        &checkpoint,
        "--train",
        "starter:mnist@6000..6300",
        "--test",
        "starter:mnist@8000..8200",
        "--epochs",
        "2",
        "--backend",
        "cpu",
    ]);
    assert!(String::from_utf8_lossy(&lp.stdout).contains("accuracy (ID test)"));

    for (args, message) in [
        (
            vec![
                "tune",
                "--method",
                "ft",
                "--train",
                "starter:mnist@0..10",
                "--test",
                "starter:mnist@0..10",
            ],
            "--checkpoint",
        ),
        (
            vec![
                "tune",
                "--method",
                "ft",
                "--checkpoint",
                &checkpoint,
                "--task",
                "mnist",
                "--lora-rank",
                "4",
            ],
            "--lora-rank does not apply to --method ft",
        ),
        (
            vec!["tune", "--method", "lora", "--checkpoint", &checkpoint, "--task", "cifar"],
            "no task \"cifar\" in the suite (it has mnist, digits-8x8)",
        ),
    ] {
        let out = nml().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

/// The browser app's parity test compares its WASM run with web/tests/parity-native.json; this
/// keeps that file equal to what `nml tune` gives natively today.
#[test]
fn the_recorded_native_run_the_browser_is_held_to_is_current() {
    let dir = scratch("parity");
    let demo = |f: &str| s(&repo().join("web/demo").join(f));
    let report = dir.join("native.json");
    run(&[
        "tune",
        "--train",
        &demo("noise30-train.safetensors"),
        "--test",
        &demo("noise30-test.safetensors"),
        "--ood",
        &format!("rotated-30={}", demo("noise30-rotated-30.safetensors")),
        "--method",
        "nmtune",
        "--epochs",
        "5",
        "--seed",
        "0",
        "--backend",
        "cpu",
        "--report",
        &s(&report),
    ]);
    let now: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let recorded: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("web/tests/parity-native.json")).unwrap(),
    )
    .unwrap();
    assert!(
        (now["accuracy"].as_f64().unwrap() - recorded["accuracy"].as_f64().unwrap()).abs() <= 0.002,
        "{} vs recorded {}",
        now["accuracy"],
        recorded["accuracy"]
    );
    assert!(
        (now["ood"]["rotated-30"].as_f64().unwrap()
            - recorded["ood"]["rotated-30"].as_f64().unwrap())
        .abs()
            <= 0.002
    );
    for (a, b) in
        now["history"].as_array().unwrap().iter().zip(recorded["history"].as_array().unwrap())
    {
        let (a, b) = (a["loss"].as_f64().unwrap(), b["loss"].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "loss {a} vs recorded {b}");
    }
}

/// `nml bench --quick` on the software WGPU adapter when there is one (so the kernel section
/// runs), else on the CPU: every asked section is in the report file, with numbers.
#[test]
fn bench_reports_every_section_it_is_asked_for() {
    let dir = scratch("bench");
    let report = dir.join("bench.md");
    let backend = if std::env::var_os("NML_REQUIRE_WGPU").is_some() { "wgpu" } else { "auto" };
    run(&[
        "bench",
        "--quick",
        "--backend",
        backend,
        "--only",
        "kernels,tune",
        "--out",
        &s(&report),
    ]);
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("## One tuning epoch on 5000 x 128 features"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("| nmtune | ") && l.ends_with(" s |")), "{text}");
    if backend == "wgpu" {
        let augment = text
            .lines()
            .find(|l| l.starts_with("| Augment 256 images"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(augment.contains("| exact | exact |"), "{augment}");
        assert!(text.contains("| Gram of 5000 x 256 features"), "{text}");
    }
    assert!(!text.contains("## Spectrum"), "a section not asked for ran: {text}");

    let out = nml()
        .args(["bench", "--only", "spectra", "--out", &s(&dir.join("no.md"))])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("'spectra'") && err.contains("spectrum"), "{err}");
    assert!(!dir.join("no.md").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A torchvision ResNet-18 pre-trained by nml on noisy labels leaves as safetensors in
/// torchvision's layout, which `nml extract --model resnet18 --weights` reads back (fed as
/// torchvision's ImageNet models are) and which the small models cannot be exported as.
#[test]
fn a_standard_resnet_pretrains_exports_and_loads_as_torchvision_weights() {
    let dir = scratch("standard");
    let run_dir = dir.join("run");
    let out = run(&[
        "pretrain",
        "--backend",
        "cpu",
        "--model",
        "resnet18",
        "--data",
        "starter:mnist@0..256|rgb",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--noise-ratio",
        "0.2",
        "--out",
        &s(&run_dir),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("realised noise"));
    let exported = dir.join("resnet18.safetensors");
    let model = run_dir.join("model.safetensors");
    let out = run(&["export-model", "--checkpoint", &s(&model), "--out", &s(&exported)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("torchvision's layout"));
    let feats = dir.join("f.safetensors");
    let args = ["--data", "starter:opencv-digits@0..20", "--backend", "cpu", "--out", &s(&feats)];
    run(&[&["extract", "--model", "resnet18", "--weights", &s(&exported)][..], &args].concat());
    let set = load_feature_set(&s(&feats)).unwrap();
    assert_eq!((set.n(), set.d()), (20, 512));

    let small = dir.join("small");
    let tiny = ["--data", "starter:mnist@0..128", "--epochs", "1", "--widths", "4,8"];
    run(&[&["pretrain", "--backend", "cpu", "--image-size", "14", "--out", &s(&small)][..], &tiny]
        .concat());
    let refused = nml()
        .args(["export-model", "--checkpoint", &s(&small.join("model.safetensors")), "--out"])
        .arg(dir.join("x.safetensors"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("no PyTorch counterpart"), "{err}");
    assert!(!dir.join("x.safetensors").exists());
    let wrong = nml()
        .args(["extract", "--model", "resnet34", "--weights", &s(&exported)])
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("resnet18.safetensors") && err.contains("missing keys: layer1.2."),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `nml pretrain --stream` on a folder of real JPEGs (cut from the fetched sample photos): it
/// trains reading the files as it goes, a broken file stops it by name or, with `|skip-bad`, is
/// left out and listed; and the loader section of `nml bench` times such a folder.
#[test]
fn a_streamed_jpeg_folder_pretrains_from_the_command_line() {
    let Some(photos) = fetched("skimage-photos") else { return };
    let dir = scratch("stream");
    let folder = dir.join("jpegs");
    nml_core::bench::jpeg_folder(&photos, &folder, 48, 3).unwrap();
    std::fs::write(folder.join("class01/zz-broken.jpg"), b"\xff\xd8 not a whole JPEG").unwrap();
    let pretrain = |data: String, out: &Path| {
        let args = ["pretrain", "--backend", "cpu", "--stream", "--loader-workers", "2"];
        let tiny = ["--widths", "4,8", "--image-size", "24", "--epochs", "2", "--batch-size", "16"];
        nml()
            .args(args)
            .args(tiny)
            .args(["--noise-ratio", "0.25", "--data", &data, "--out", &s(out)])
            .output()
            .unwrap()
    };
    let strict = pretrain(s(&folder), &dir.join("strict"));
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(!strict.status.success() && err.contains("zz-broken.jpg"), "{err}");
    assert!(!dir.join("strict/model.safetensors").exists());
    let out = pretrain(format!("{}|skip-bad", folder.display()), &dir.join("run"));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("49 images") && stdout.contains("epoch   2"), "{stdout}");
    assert!(
        stderr.contains("skipped 1 unreadable files") && stderr.contains("zz-broken"),
        "{stderr}"
    );
    let encoder =
        nml_core::EncoderFile::in_run_dir(&dir.join("run"), &burn::tensor::Device::flex());
    assert_eq!(encoder.unwrap().encoder.in_channels(), 3);

    let report = dir.join("bench.md");
    let bench = ["bench", "--quick", "--backend", "cpu", "--only", "loader", "--out", &s(&report)];
    let out = nml().args(bench).current_dir(repo()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&report).unwrap();
    let row =
        text.lines().find(|l| l.starts_with("| 64 JPEGs")).unwrap_or_else(|| panic!("{text}"));
    assert!(row.split('|').nth(3).unwrap().trim().parse::<f64>().unwrap() > 0.0, "{row}");
    std::fs::remove_dir_all(&dir).ok();
}

/// CIFAR binary records (`fine` adds CIFAR-100's coarse label byte) of the starter digits
/// `range`, resampled to 32 px and tinted by class, so a CIFAR-format file holds real images.
fn cifar_records(range: std::ops::Range<usize>, fine: bool) -> Vec<u8> {
    let digits = ImageSet::starter(nml_core::data::StarterSet::Mnist).unwrap();
    let digits = digits.subset(&range.collect::<Vec<_>>()).resized(32, 32);
    let mut bytes = Vec::new();
    for (i, &label) in digits.labels().iter().enumerate() {
        if fine {
            bytes.push(label as u8 / 5);
        }
        bytes.push(label as u8);
        let image = digits.image(i);
        for tint in [1, 1 + label % 2, 1] {
            bytes.extend(image.iter().map(|&p| p / tint as u8));
        }
    }
    bytes
}

/// The gpu preset as it is (torchvision's ResNet-18, CIFAR-100 pre-training, its tasks and
/// recipes), shrunk to a tiny size: every `@A..B` range divided by 50, two noise ratios, one
/// seed, one epoch, on CIFAR-format files of a few hundred real (digit) images laid out where
/// the preset expects CIFAR. It runs end to end and reports every task.
#[test]
fn the_gpu_preset_runs_end_to_end_at_a_tiny_size() {
    if fetched("fashion-mnist").is_none() {
        return;
    }
    let fetched = repo().join("data/fetched");
    let dir = scratch("gpu-preset");
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("cifar-100-binary")).unwrap();
    std::fs::create_dir_all(data.join("cifar-10-batches-bin")).unwrap();
    std::fs::write(data.join("cifar-100-binary/train.bin"), cifar_records(0..400, true)).unwrap();
    let cifar10 = data.join("cifar-10-batches-bin");
    std::fs::write(cifar10.join("data_batch_1.bin"), cifar_records(400..600, false)).unwrap();
    std::fs::write(cifar10.join("test_batch.bin"), cifar_records(600..800, false)).unwrap();
    std::os::unix::fs::symlink(&fetched, data.join("fetched")).unwrap();

    let text = std::fs::read_to_string(repo().join("native/suites/gpu.toml")).unwrap();
    let mut suite: toml::Table = toml::from_str(&text).unwrap();
    let shrink = |source: &str| match source.split_once('@') {
        None => source.to_string(),
        Some((head, tail)) => {
            let (range, rest) = tail.split_at(tail.find('|').unwrap_or(tail.len()));
            let (a, b) = range.split_once("..").unwrap();
            let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
            format!("{head}@{}..{}{rest}", a / 50, b / 50)
        }
    };
    for task in suite["task"].as_array_mut().unwrap() {
        let task = task.as_table_mut().unwrap();
        for key in ["train", "test"] {
            let source = shrink(task[key].as_str().unwrap());
            task.insert(key.into(), source.into());
        }
        for (_, source) in task["ood"].as_table_mut().unwrap().iter_mut() {
            *source = shrink(source.as_str().unwrap()).into();
        }
    }
    suite.insert("ratios".into(), toml::Value::try_from([0.0, 0.3]).unwrap());
    suite.insert("seeds".into(), toml::Value::try_from([0]).unwrap());
    let pretrain = suite["pretrain"].as_table_mut().unwrap();
    pretrain.insert("epochs".into(), 1.into());
    pretrain.insert("batch_size".into(), 64.into());
    let tune = suite["tune"].as_table_mut().unwrap();
    tune.insert("epochs".into(), 2.into());
    tune.insert("fractions".into(), toml::Value::try_from([1.0]).unwrap());
    let tiny = dir.join("gpu-tiny.toml");
    std::fs::write(&tiny, toml::to_string(&suite).unwrap()).unwrap();

    let out = nml()
        .args(["sweep", "--suite", &s(&tiny), "--out", "out", "--backend", "cpu"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results = std::fs::read_to_string(dir.join("out/results.csv")).unwrap();
    // Two pre-training runs x three tasks x three heads at one fraction, each with its ID row.
    let id_rows = results.lines().filter(|l| l.contains(",id,test,")).count();
    assert_eq!(id_rows, 2 * 3 * 3, "{results}");
    assert!(results.lines().any(|l| l.starts_with("supervised,0.3,0,cifar10,ood,grey,")));
    let summary = std::fs::read_to_string(dir.join("out/summary.md")).unwrap();
    for task in ["cifar10", "mnist", "fashion"] {
        assert!(summary.contains(task), "{task} missing from {summary}");
    }
    assert!(summary.contains("rotated-30") && summary.contains("opencv-digits"), "{summary}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `nml embed` with all-MiniLM-L6-v2: a JSONL file's texts come out in input order with their
/// class names, as sentence-transformers embeds them (unit length; two paraphrases closer than
/// an unrelated text), and a bad row is an error naming its line that writes nothing.
#[test]
fn texts_embed_from_the_command_line() {
    let Some(model) = fetched("all-minilm-l6-v2") else { return };
    let dir = scratch("embed");
    let input = dir.join("texts.jsonl");
    let rows = [
        ("The weather is lovely today.", "weather"),
        ("He drove to the stadium.", "sport"),
        ("It's so sunny outside!", "weather"),
    ];
    let lines: Vec<String> = rows
        .iter()
        .map(|(text, label)| serde_json::json!({ "text": text, "label": label }).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.join("texts.safetensors");
    let args = ["embed", "--model", "minilm", "--backend", "cpu", "--batch-size", "2"];
    let weights = ["--weights", &s(&model), "--input", &s(&input), "--out", &s(&out)];
    let stdout = run(&[&args[..], &weights].concat()).stdout;
    assert!(String::from_utf8_lossy(&stdout).contains("3 texts, 2 classes"));
    let set = load_feature_set(&s(&out)).unwrap();
    assert_eq!((set.n(), set.d(), set.labels()), (3, 384, &[1, 0, 1][..]));
    assert_eq!(set.class_names(), ["sport", "weather"]);
    let row = |i: usize| &set.features()[i * 384..(i + 1) * 384];
    let dot = |a: usize, b: usize| row(a).iter().zip(row(b)).map(|(x, y)| x * y).sum::<f32>();
    assert!((dot(0, 0) - 1.0).abs() < 1e-5);
    assert!(
        (dot(0, 2) - 0.6660).abs() < 6e-4 && dot(0, 2) > dot(0, 1),
        "{} {}",
        dot(0, 2),
        dot(0, 1)
    );

    std::fs::write(&input, format!("{}\n{{\"text\": \"\", \"label\": \"sport\"}}\n", lines[0]))
        .unwrap();
    let bad = dir.join("bad.safetensors");
    let weights = ["--weights", &s(&model), "--input", &s(&input), "--out", &s(&bad)];
    let failed = nml().args([&args[..], &weights].concat()).output().unwrap();
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success() && err.contains("texts.jsonl:2: the text is empty"), "{err}");
    assert!(!bad.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// The text preset's sets read from what scripts/fetch-data brings, with the sizes its comments
/// give, and every split of a task names the same classes.
#[test]
fn text_preset_sets_have_their_documented_sizes() {
    if fetched("bbc-news").is_none() || fetched("fine-food-reviews").is_none() {
        return;
    }
    let toml = std::fs::read_to_string(repo().join("native/suites/text.toml")).unwrap();
    let StudySuite::Text(suite) = StudySuite::from_toml(&toml, "text.toml").unwrap() else {
        panic!("the text preset is a text suite")
    };
    let load = |source: &TextSource| {
        let at_root: TextSource = format!("{}/{source}", s(&repo())).parse().unwrap();
        at_root.load().unwrap()
    };
    let mut sizes = Vec::new();
    for task in &suite.tasks {
        let train = load(&task.train);
        let mut splits =
            vec![(task.train.clone(), train.clone()), (task.test.clone(), load(&task.test))];
        splits.extend(task.ood.values().map(|o| (o.clone(), load(o))));
        for (source, set) in &splits {
            assert_eq!(set.class_names(), train.class_names(), "{source}");
            assert!(set.labels().is_some(), "{source} is labelled");
            sizes.push((task.name.clone(), set.len()));
        }
    }
    let expected = [
        ("bbc-topics", 600),
        ("bbc-topics", 825),
        ("bbc-topics", 825),
        ("bbc-topics", 825),
        ("fine-food-sentiment", 1200),
        ("fine-food-sentiment", 567),
        ("fine-food-sentiment", 837),
    ];
    let expected: Vec<(String, usize)> =
        expected.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    assert_eq!(sizes, expected);
}
