//! The layering of the crate, checked: every module may use only the modules of lower layers
//! (and its own). docs/architecture.md shows the same graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module with its layer; a module may use a module only of a lower layer.
const LAYERS: &[(&str, u32)] = &[
    ("error", 0),
    ("io", 1),
    ("readback", 1),
    ("store", 1),
    ("ops", 1),
    ("device", 1),
    ("noise", 2),
    ("data", 2),
    ("kernels", 3),
    ("spectrum", 4),
    ("models", 4),
    ("train", 5),
    ("tune", 6),
    ("pretrain", 7),
    ("finetune", 8),
    ("encoder_file", 9),
    ("study", 10),
    ("bench", 11),
];

/// Which crate modules each top-level module's sources (tests left out) refer to.
fn uses(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = path.strip_prefix(src).unwrap();
        let name = rel.to_string_lossy();
        if !name.ends_with(".rs")
            || name.ends_with("tests.rs")
            || ["lib.rs", "layers.rs", "test_support.rs"].contains(&name.as_ref())
        {
            continue;
        }
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let used = graph.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let target: String =
                rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !target.is_empty() && target != module {
                used.insert(target);
            }
        }
    }
    graph
}

#[test]
fn modules_use_only_lower_layers() {
    let layer: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let graph = uses(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut violations = Vec::new();
    for (module, used) in &graph {
        let Some(&own) = layer.get(module.as_str()) else {
            violations.push(format!("{module} has no layer in layers.rs"));
            continue;
        };
        for target in used {
            match layer.get(target.as_str()) {
                Some(&other) if other < own => {}
                Some(&other) => {
                    violations.push(format!("{module} (layer {own}) uses {target} (layer {other})"))
                }
                None => violations.push(format!("{module} uses {target}, which has no layer")),
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
    // The graph as docs/architecture.md lists it.
    for (module, used) in &graph {
        eprintln!("{module}: {}", used.iter().cloned().collect::<Vec<_>>().join(", "));
    }
}
