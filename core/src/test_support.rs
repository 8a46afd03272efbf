//! Helpers shared by the unit tests.

use burn::tensor::Device;

use crate::device::{BackendChoice, select};

/// The WGPU device when an adapter exists (a software one such as llvmpipe counts), or `None`
/// after saying why the WGPU half of a test is skipped; with `NML_REQUIRE_WGPU` set (as
/// scripts/test-all does where the software adapter is installed), a missing adapter fails.
pub fn wgpu_or_skip(test: &str) -> Option<Device> {
    match select(BackendChoice::Wgpu) {
        Ok(d) => {
            eprintln!("{test}: running on {}", d.description);
            Some(d.device)
        }
        Err(e) if std::env::var_os("NML_REQUIRE_WGPU").is_some() => {
            panic!("{test}: NML_REQUIRE_WGPU is set but WGPU is unavailable: {e}")
        }
        Err(e) => {
            eprintln!(
                "{test}: WGPU part skipped: {e} (install mesa-vulkan-drivers for a software adapter)"
            );
            None
        }
    }
}

/// `data/fetched/SET` (what scripts/fetch-data brings) when it is there, or `None` after saying
/// the test is skipped; with `NML_REQUIRE_FETCHED` set (as scripts/test-all does after fetching),
/// a missing set fails.
pub fn fetched_or_skip(test: &str, set: &str) -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fetched");
    let dir = root.join(set);
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("NML_REQUIRE_FETCHED").is_some() {
        panic!("{test}: NML_REQUIRE_FETCHED is set but {} is missing", dir.display());
    }
    eprintln!("{test}: skipped: {} is missing (run scripts/fetch-data)", dir.display());
    None
}
