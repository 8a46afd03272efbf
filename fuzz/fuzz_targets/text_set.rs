#![no_main]
//! A texts file as `nml embed --input` reads it, in each of its three layouts, and the article
//! parts a text source's `|part=` step takes of each text.
use libfuzzer_sys::fuzz_target;
use nml_core::data::{ArticlePart, TextFormat, TextSet};

fuzz_target!(|data: &[u8]| {
    for format in [TextFormat::JsonLines, TextFormat::Csv, TextFormat::Plain] {
        if let Ok(set) = TextSet::from_bytes(data, "fuzz", format) {
            assert!(!set.is_empty());
            assert!(set.texts().iter().all(|t| !t.trim().is_empty()));
            if let Some(labels) = set.labels() {
                assert_eq!(labels.len(), set.len());
            }
            for part in [ArticlePart::Title, ArticlePart::Lead, ArticlePart::Body] {
                if let Ok(parts) = set.clone().map_texts(|t| part.of(t)) {
                    assert_eq!(parts.len(), set.len());
                    assert!(parts.texts().iter().all(|t| !t.trim().is_empty()));
                }
            }
        }
    }
    // A text file of a class folder, as any bytes: UTF-8 or Latin-1, never a panic.
    let text = String::from_utf8_lossy(data);
    for part in [ArticlePart::Title, ArticlePart::Lead, ArticlePart::Body] {
        let piece = part.of(&text);
        assert_eq!(piece, piece.trim());
    }
});
