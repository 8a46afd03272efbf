#![no_main]
//! A texts file as `nml embed --input` reads it, in each of its three layouts.
use libfuzzer_sys::fuzz_target;
use nml_core::data::{TextFormat, TextSet};

fuzz_target!(|data: &[u8]| {
    for format in [TextFormat::JsonLines, TextFormat::Csv, TextFormat::Plain] {
        if let Ok(set) = TextSet::from_bytes(data, "fuzz", format) {
            assert!(!set.is_empty());
            assert!(set.texts().iter().all(|t| !t.trim().is_empty()));
            if let Some(labels) = set.labels() {
                assert_eq!(labels.len(), set.len());
            }
        }
    }
});
