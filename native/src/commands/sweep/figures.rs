//! The study's figures, each written as PNG and SVG.

use std::path::Path;

use nml_core::Result;
use nml_core::study::Results;

use crate::plot::{LineFigure, render};

pub fn render_all(out: &Path, results: &Results) -> Result<()> {
    for figure in results.figures() {
        let drawn = LineFigure::from(&figure);
        render(&out.join(format!("{}.png", figure.file)), &drawn)?;
        render(&out.join(format!("{}.svg", figure.file)), &drawn)?;
    }
    Ok(())
}
