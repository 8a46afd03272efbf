//! The binary's own surface: help, the demo on built-in data, argument errors.

use std::process::Command;

fn nml() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nml"))
}

#[test]
fn help_lists_every_subcommand() {
    let out = nml().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for sub in ["spectrum", "noise", "tune", "predict", "export", "demo"] {
        assert!(text.contains(sub), "{sub} missing from:\n{text}");
    }
}

#[test]
fn demo_runs_on_built_in_data() {
    let dir = std::env::temp_dir().join(format!("nml-demo-test-{}", std::process::id()));
    let out = nml()
        .args(["demo", "--epochs", "1", "--backend", "cpu", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in [
        "summary.md",
        "spectrum.png",
        "spectrum.svg",
        "spectrum.json",
        "report-lp.json",
        "report-mlp.json",
        "report-nmtune.json",
        "features/mnist-train.safetensors",
    ] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("| nmtune |"), "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_values_are_rejected_with_choices() {
    let out = nml().args(["spectrum", "x.safetensors", "--mode", "weird"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("paper") && err.contains("centered"), "{err}");
}
