//! `report.svg`: the run's figures as horizontal bar charts, one panel per figure and one bar per
//! variant: median latency, reformat-layer time, and the Q/DQ node count of each ONNX model.
//!
//! Owns the chart's layout (plotters, SVG backend). A variant without the figure gets its reason
//! written where its bar would be ("not built: no TensorRT", "not profiled"), and a panel where no
//! variant has the figure says so in one line ("latency: not built: no TensorRT") instead of empty
//! bars. Text names the font family only (`sans-serif`): no font files are read, the viewer renders it.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use super::cells;
use super::model::{RunReport, VariantReport};

const WIDTH: u32 = 820;
const PANEL_HEIGHT: u32 = 190;
/// Height of a panel that only says why it has no bars.
const EMPTY_PANEL_HEIGHT: u32 = 80;
const TITLE_HEIGHT: u32 = 36;
/// Pixels between a bar's end and its label, and between the axis and the variant names.
const GAP: i32 = 6;
const FONT: &str = "sans-serif";
const BAR: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);
const GREY_TEXT: RGBColor = RGBColor(0x70, 0x70, 0x70);

/// A figure of one variant: its value, or why it has none.
type Figure = Result<f64, String>;

struct Panel {
    title: &'static str,
    unit: &'static str,
    /// What a bar shows, worded for the panel-wide "no data" line ("latency").
    short: &'static str,
    figures: Vec<(String, Figure)>,
}

/// Renders the report as an SVG document.
pub fn to_svg(report: &RunReport) -> Result<String, ReportError> {
    let panels = [
        panel(report, "Median latency", "ms", "latency", |v| {
            let engine = v
                .engine()
                .ok_or_else(|| v.not_built_text().unwrap_or_default())?;
            engine
                .latency
                .as_ref()
                .map(|l| l.median_ms)
                .ok_or_else(|| "not timed".to_string())
        }),
        panel(report, "Reformat layer time", "ms", "reformat time", |v| {
            let engine = v
                .engine()
                .ok_or_else(|| v.not_built_text().unwrap_or_default())?;
            let record = engine
                .verify
                .as_ref()
                .ok_or_else(|| "no layer report".to_string())?;
            record
                .reformat_time_ms
                .ok_or_else(|| "not profiled".to_string())
        }),
        panel(
            report,
            "Q/DQ nodes in the ONNX model",
            "nodes",
            "Q/DQ nodes",
            |v| {
                v.qdq_nodes
                    .map(|n| n as f64)
                    .ok_or_else(|| "model not available".to_string())
            },
        ),
    ];
    let mut svg = String::new();
    {
        let heights: Vec<u32> = panels
            .iter()
            .map(|p| {
                if p.has_values() {
                    PANEL_HEIGHT
                } else {
                    EMPTY_PANEL_HEIGHT
                }
            })
            .collect();
        let height = TITLE_HEIGHT + heights.iter().sum::<u32>();
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        let draw = |e: &dyn std::fmt::Display| ReportError::Chart(e.to_string());
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        let title = format!("trtq: {} (batch {})", report.model, report.batch_size);
        root.draw(&Text::new(
            title,
            (12, 10),
            (FONT, 18).into_font().color(&BLACK),
        ))
        .map_err(|e| draw(&e))?;
        let body = root.margin(TITLE_HEIGHT, 0, 0, 0);
        let breaks: Vec<i32> = heights
            .iter()
            .scan(0, |top, h| {
                *top += *h as i32;
                Some(*top)
            })
            .take(panels.len().saturating_sub(1))
            .collect();
        let areas = body.split_by_breakpoints::<i32, i32, _, _>([], breaks);
        for (area, panel) in areas.iter().zip(&panels) {
            draw_panel(area, panel).map_err(|e| draw(&e))?;
        }
        root.present().map_err(|e| draw(&e))?;
    }
    Ok(svg)
}

impl Panel {
    fn has_values(&self) -> bool {
        self.figures.iter().any(|(_, f)| f.is_ok())
    }
}

fn panel(
    report: &RunReport,
    title: &'static str,
    unit: &'static str,
    short: &'static str,
    figure: impl Fn(&VariantReport) -> Figure,
) -> Panel {
    Panel {
        title,
        unit,
        short,
        figures: report
            .variants
            .iter()
            .map(|v| (v.variant.label().to_string(), figure(v)))
            .collect(),
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let values: Vec<f64> = panel
        .figures
        .iter()
        .filter_map(|(_, f)| f.as_ref().ok().copied())
        .collect();
    let caption = format!("{} ({})", panel.title, panel.unit);
    if values.is_empty() {
        // No variant has this figure: one line saying why, instead of an empty chart.
        let reasons: Vec<&str> = panel
            .figures
            .iter()
            .filter_map(|(_, f)| f.as_ref().err().map(String::as_str))
            .collect();
        let reason = if reasons.windows(2).all(|w| w[0] == w[1]) {
            reasons
                .first()
                .copied()
                .unwrap_or("no variants")
                .to_string()
        } else {
            reasons.join("; ")
        };
        let centered = Pos::new(HPos::Center, VPos::Top);
        let middle = WIDTH as i32 / 2;
        area.draw(&Text::new(
            caption,
            (middle, 8),
            (FONT, 16).into_font().color(&BLACK).pos(centered),
        ))?;
        area.draw(&Text::new(
            format!("{}: {reason}", panel.short),
            (middle, 40),
            (FONT, 15).into_font().color(&GREY_TEXT).pos(centered),
        ))?;
        return Ok(());
    }
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let x_end = if max > 0.0 { max * 1.3 } else { 1.0 };
    // Segments count from the bottom; the first variant goes on top.
    // One segment per variant: the inner range `0..=rows-1` (plotters' segmented ranges include
    // their end), so no empty segment and no unlabelled tick sit above the top bar.
    let rows = panel.figures.len();
    let row = |i: usize| rows - 1 - i;
    let names: Vec<String> = panel
        .figures
        .iter()
        .rev()
        .map(|(name, _)| name.clone())
        .collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 16))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..x_end, (0..rows.saturating_sub(1)).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .set_tick_mark_size(LabelAreaPosition::Left, GAP)
        .y_labels(rows)
        .y_label_formatter(&|value| match value {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                names.get(*i).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        .x_label_formatter(&|x| {
            if panel.unit == "ms" {
                format!("{x:.2}")
            } else {
                format!("{x:.0}")
            }
        })
        .label_style((FONT, 13))
        .draw()?;
    let label_style = (FONT, 13)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (_, figure)) in panel.figures.iter().enumerate() {
        let at = |x: f64| (x, SegmentValue::CenterOf(row(i)));
        match figure {
            Ok(value) => {
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(row(i))),
                        (*value, segment_top(row(i), rows)),
                    ],
                    BAR.filled(),
                );
                bar.set_margin(8, 8, 0, 0);
                chart.draw_series(std::iter::once(bar))?;
                let text = if panel.unit == "ms" {
                    cells::ms(*value)
                } else {
                    format!("{value:.0}")
                };
                chart.draw_series(std::iter::once(
                    EmptyElement::at(at(*value)) + Text::new(text, (GAP, 0), label_style.clone()),
                ))?;
            }
            Err(reason) => {
                chart.draw_series(std::iter::once(
                    EmptyElement::at(at(0.0))
                        + Text::new(
                            reason.clone(),
                            (GAP, 0),
                            label_style.clone().color(&GREY_TEXT),
                        ),
                ))?;
            }
        }
    }
    Ok(())
}

/// The upper edge of segment `row` of `rows`: the next segment's start, or the axis end.
fn segment_top(row: usize, rows: usize) -> SegmentValue<usize> {
    if row + 1 < rows {
        SegmentValue::Exact(row + 1)
    } else {
        SegmentValue::Last
    }
}
