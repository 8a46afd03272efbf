#![no_main]
//! A study's `study.json`, which `nml sweep report` reads from an output folder.
use libfuzzer_sys::fuzz_target;
use nml_core::study::StudyFile;

fuzz_target!(|data: &[u8]| {
    let _ = StudyFile::from_json(data, "study.json");
});
