#![no_main]
//! A `tokenizer.json` as a sentence encoder's folder holds it, then a text through it.
use libfuzzer_sys::fuzz_target;
use nml_core::data::TextTokenizer;

fuzz_target!(|data: &[u8]| {
    if let Ok(tokenizer) = TextTokenizer::from_bytes(data, "fuzz.json", 16) {
        if let Ok(tokens) = tokenizer.encode("The quick brown fox, naïve café 北京.") {
            assert!(tokens.ids.len() <= 16);
        }
    }
});
