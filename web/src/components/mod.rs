//! The page's views, each a function component reading the state it is given.

mod app;
mod chart;
mod curves;
mod model_panel;
mod runs_table;
mod spectra;
mod text_panel;
mod tune_panel;

pub use app::App;
