//! Plots written as PNG or SVG (chosen by the file's extension), atomically, with a font built
//! into the binary so they render the same on machines without fonts.

use std::path::Path;
use std::sync::Once;

use nml_core::io::write_atomic;
use nml_core::spectrum::SpectrumReport;
use nml_core::study::{Figure as StudyFigure, Panel};
use nml_core::{NmlError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

const SIZE: (u32, u32) = (1000, 640);

/// Something that can draw itself on any plotters backend.
pub trait Figure {
    /// The canvas, in pixels.
    fn size(&self) -> (u32, u32) {
        SIZE
    }
    fn draw<DB: DrawingBackend>(&self, area: DrawingArea<DB, Shift>) -> Result<()>;
}

fn plot_error(e: impl std::fmt::Display) -> NmlError {
    NmlError::Invalid(format!("plotting: {e}"))
}

/// Renders `figure` to `path` (.png or .svg); the file appears complete or not at all.
pub fn render(path: &Path, figure: &impl Figure) -> Result<()> {
    register_font();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "svg" => {
            let mut svg = String::new();
            {
                let area = SVGBackend::with_string(&mut svg, figure.size()).into_drawing_area();
                figure.draw(area)?;
            }
            write_atomic(path, svg.as_bytes())
        }
        "png" => {
            let tmp = path.with_extension(format!("tmp{}.png", std::process::id()));
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| NmlError::io(dir, e))?;
            }
            let result = (|| {
                {
                    let area = BitMapBackend::new(&tmp, figure.size()).into_drawing_area();
                    figure.draw(area)?;
                }
                std::fs::rename(&tmp, path).map_err(|e| NmlError::io(path, e))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
        _ => {
            Err(NmlError::Invalid(format!("{}: plots are written as .png or .svg", path.display())))
        }
    }
}

/// One curve of a spectrum plot.
pub struct PlotSeries {
    pub label: String,
    pub values: Vec<f64>,
}

impl PlotSeries {
    pub fn from_report(r: &SpectrumReport) -> Self {
        Self {
            label: format!(
                "{}  SVE {:.3}  LSVR {:.4} (-ln {:.3})",
                crate::commands::spectrum::shorten(&r.name, 38),
                r.metrics.sve,
                r.metrics.lsvr_ratio,
                r.metrics.lsvr_neglog
            ),
            values: r.singular_values.clone(),
        }
    }
}

/// Singular values against their index, log-scale, several spectra overlaid. Each spectrum is
/// divided by its sum so sets of different size and scale share one axis.
pub struct SpectrumFigure<'a> {
    pub title: &'a str,
    pub series: &'a [PlotSeries],
}

impl Figure for SpectrumFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, area: DrawingArea<DB, Shift>) -> Result<()> {
        area.fill(&WHITE).map_err(plot_error)?;
        let normalised: Vec<Vec<f64>> = self
            .series
            .iter()
            .map(|s| {
                let total: f64 = s.values.iter().sum::<f64>().max(f64::MIN_POSITIVE);
                s.values.iter().map(|v| v / total).filter(|v| *v > 0.0).collect()
            })
            .collect();
        let max_len = normalised.iter().map(Vec::len).max().unwrap_or(1).max(2);
        let all = normalised.iter().flatten().copied();
        let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if lo <= hi { (lo * 0.8, hi * 1.25) } else { (1e-6, 1.0) };
        let mut chart = ChartBuilder::on(&area)
            .caption(self.title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(1f64..max_len as f64, (lo..hi).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("index i (descending)")
            .y_desc("s_i / Σ s_j")
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(plot_error)?;
        for (k, (s, values)) in self.series.iter().zip(&normalised).enumerate() {
            let color = Palette99::pick(k).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    values.iter().enumerate().map(|(i, v)| ((i + 1) as f64, *v)),
                    color.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(plot_error)?;
        area.present().map_err(plot_error)
    }
}

/// Convenience for the common case.
pub fn spectrum_plot(path: &Path, title: &str, series: &[PlotSeries]) -> Result<()> {
    render(path, &SpectrumFigure { title, series })
}

/// A tick's number, short: four decimals at most (trailing zeros dropped), or scientific
/// notation far from 1.
fn tick_label(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e6) {
        return format!("{v:.2e}");
    }
    let fixed = format!("{v:.4}");
    fixed.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Labelled lines over one x axis (optionally log-scale), e.g. accuracy against noise, in one
/// panel or several (small multiples on shared axes, the legend in the first); a point's bar
/// is drawn where it has one.
pub struct LineFigure<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub panels: &'a [Panel],
    pub log_x: bool,
    /// Points alone, unjoined.
    pub scatter: bool,
}

impl<'a> From<&'a StudyFigure> for LineFigure<'a> {
    fn from(f: &'a StudyFigure) -> Self {
        Self {
            title: f.title,
            x_label: f.x_label,
            y_label: f.y_label,
            panels: &f.panels,
            log_x: f.log_x,
            scatter: f.scatter,
        }
    }
}

impl LineFigure<'_> {
    /// Where `x` sits on the drawn axis (log10 of it on a log axis).
    fn axis_x(&self, x: f64) -> f64 {
        if self.log_x { x.max(f64::MIN_POSITIVE).log10() } else { x }
    }

    /// `(rows, columns)` of the panel grid: as square as the panels allow.
    fn grid(&self) -> (usize, usize) {
        let n = self.panels.len().max(1);
        let columns = (n as f64).sqrt().ceil() as usize;
        (n.div_ceil(columns), columns)
    }

    /// The shared axes' ranges over every panel, padded.
    fn ranges(&self) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
        let points = self.panels.iter().flat_map(|p| &p.series).flat_map(|s| &s.points);
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in points.filter(|p| p.y.is_finite()) {
            let x = self.axis_x(p.x);
            (x0, x1) = (x0.min(x), x1.max(x));
            (y0, y1) = (y0.min(p.low.min(p.y)), y1.max(p.high.max(p.y)));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad_x = ((x1 - x0) * 0.05).max(1e-6);
        let pad_y = ((y1 - y0) * 0.08).max(1e-6);
        (x0 - pad_x..x1 + pad_x, y0 - pad_y..y1 + pad_y)
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: &Panel,
        legend: bool,
    ) -> Result<()> {
        let (x_range, y_range) = self.ranges();
        // Lines side by side would hide each other's bars: each is nudged sideways a little.
        let nudge = if self.scatter { 0.0 } else { (x_range.end - x_range.start) * 0.006 };
        let middle = (panel.series.len() as f64 - 1.0) / 2.0;
        let log_x = self.log_x;
        let x_format = move |v: &f64| tick_label(if log_x { 10f64.powf(*v) } else { *v });
        let mut builder = ChartBuilder::on(area);
        if !panel.title.is_empty() {
            builder.caption(&panel.title, ("sans-serif", 18));
        }
        let mut chart = builder
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range, y_range)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(if log_x {
                format!("{} (log scale)", self.x_label)
            } else {
                self.x_label.to_string()
            })
            .y_desc(self.y_label)
            .x_label_formatter(&x_format)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(plot_error)?;
        for (k, s) in panel.series.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let points: Vec<(f64, f64, f64, f64)> = s
                .points
                .iter()
                .filter(|p| p.y.is_finite())
                .map(|p| (self.axis_x(p.x) + (k as f64 - middle) * nudge, p.y, p.low, p.high))
                .collect();
            let dots = |radius| {
                points.iter().map(move |p| Circle::new((p.0, p.1), radius, color.filled()))
            };
            let drawn = if self.scatter {
                chart.draw_series(dots(4))
            } else {
                chart.draw_series(LineSeries::new(
                    points.iter().map(|p| (p.0, p.1)),
                    color.stroke_width(2),
                ))
            };
            drawn.map_err(plot_error)?.label(s.label.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
            if !self.scatter {
                chart.draw_series(dots(3)).map_err(plot_error)?;
            }
            let bars = points.iter().filter(|p| p.3 > p.2).map(|&(x, _, low, high)| {
                PathElement::new(vec![(x, low), (x, high)], color.stroke_width(1))
            });
            chart.draw_series(bars).map_err(plot_error)?;
        }
        if legend {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .position(SeriesLabelPosition::LowerLeft)
                .draw()
                .map_err(plot_error)?;
        }
        Ok(())
    }
}

impl Figure for LineFigure<'_> {
    fn size(&self) -> (u32, u32) {
        match self.grid() {
            (1, 1) => SIZE,
            (rows, columns) => (560 * columns as u32, 420 * rows as u32 + 40),
        }
    }

    fn draw<DB: DrawingBackend>(&self, area: DrawingArea<DB, Shift>) -> Result<()> {
        area.fill(&WHITE).map_err(plot_error)?;
        let inner = area.titled(self.title, ("sans-serif", 24)).map_err(plot_error)?;
        let (rows, columns) = self.grid();
        let cells = inner.split_evenly((rows, columns));
        for (k, (panel, cell)) in self.panels.iter().zip(&cells).enumerate() {
            self.draw_panel(cell, panel, k == 0)?;
        }
        area.present().map_err(plot_error)
    }
}

#[cfg(test)]
mod tests {
    use super::tick_label;

    /// Axis numbers never show floating-point residue: ticks are sums of f64 steps, which
    /// print as 5.300000000005 where 5.3 is meant.
    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(5.300_000_000_000_5), "5.3");
        assert_eq!(tick_label(10.0), "10");
        assert_eq!(tick_label(0.125), "0.125");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(-2.5), "-2.5");
        assert_eq!(tick_label(2.0e-5), "2.00e-5");
        assert_eq!(tick_label(4_030_000.0), "4.03e6");
    }
}
