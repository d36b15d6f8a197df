//! The console's charts (issue #18 §1): paid amount and order count per
//! Beijing-time hour and day, the payment success ratio per day, and the
//! notification delay per day (WeChat's time_end to our commit of PAID),
//! as series of integers and as SVG drawn here, on the server.
//!
//! The figures come from `db::stats`, one row per bucket; every bucket of the
//! range is present in a series (zero, or no value, when nothing happened),
//! so the chart's axis is the range itself. Money stays integer fen and is
//! written in yuan digit by digit; the ratio is integer per mille.
//!
//! The SVG is a pure function of the series: a fixed viewBox, no script, no
//! external reference, and every piece of text XML-escaped.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use super::PayState;
use crate::db::stats::{self, BEIJING_OFFSET};
use crate::error::PayError;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// Percentiles of the delay chart.
const DELAY_PERCENTS: [i64; 2] = [50, 90];
/// Unix seconds of 9999-12-31T23:59:59Z: beyond it a bound is a typo, and
/// the arithmetic on it could overflow.
const LATEST: i64 = 253_402_300_799;

/// One of the console's charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    PaidHourly,
    PaidDaily,
    SuccessRatio,
    NotifyDelay,
}

impl Chart {
    pub const ALL: [Chart; 4] = [
        Chart::PaidHourly,
        Chart::PaidDaily,
        Chart::SuccessRatio,
        Chart::NotifyDelay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Chart::PaidHourly => "paid-hourly",
            Chart::PaidDaily => "paid-daily",
            Chart::SuccessRatio => "success-ratio",
            Chart::NotifyDelay => "notify-delay",
        }
    }

    pub fn parse(name: &str) -> Option<Chart> {
        Chart::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The width of one bucket, in seconds.
    pub fn bucket_seconds(self) -> i64 {
        match self {
            Chart::PaidHourly => HOUR,
            _ => DAY,
        }
    }

    /// The longest range asked for: 7 days of hours, 92 days of days.
    fn max_span(self) -> i64 {
        match self {
            Chart::PaidHourly => 7 * DAY,
            _ => 92 * DAY,
        }
    }

    /// The range when none is given: the last 24 hours or 30 days, up to the
    /// end of the current bucket.
    fn default_span(self) -> i64 {
        match self {
            Chart::PaidHourly => DAY,
            _ => 30 * DAY,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Chart::PaidHourly => "每小时支付金额与笔数",
            Chart::PaidDaily => "每日支付金额与笔数",
            Chart::SuccessRatio => "每日支付成功率（已支付 ÷ 创建）",
            Chart::NotifyDelay => "每日支付通知延迟（微信支付完成 → 本地入账）",
        }
    }
}

/// `[from, to)`, Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

/// The range asked for (`from`/`to` as Unix seconds, each optional), checked
/// against the chart's limits; 400 naming what is wrong.
pub fn range(
    chart: Chart,
    from: Option<&str>,
    to: Option<&str>,
    now: i64,
) -> Result<Range, PayError> {
    let width = chart.bucket_seconds();
    let to = match to.filter(|s| !s.is_empty()) {
        Some(s) => unix("to", s)?,
        // The end of the current bucket, so that it is drawn whole.
        None => bucket_start(now, width) + width,
    };
    let from = match from.filter(|s| !s.is_empty()) {
        Some(s) => unix("from", s)?,
        None => to - chart.default_span(),
    };
    if from >= to {
        return Err(PayError::invalid("from must be before to"));
    }
    if to - from > chart.max_span() {
        return Err(PayError::invalid(format!(
            "{} covers at most {} days",
            chart.name(),
            chart.max_span() / DAY
        )));
    }
    Ok(Range { from, to })
}

fn unix(name: &str, s: &str) -> Result<i64, PayError> {
    s.parse::<i64>()
        .ok()
        .filter(|t| (0..=LATEST).contains(t))
        .ok_or_else(|| PayError::invalid(format!("{name} must be Unix seconds")))
}

/// The bucket `t` falls in, as the index the database computes.
fn bucket_index(t: i64, width: i64) -> i64 {
    (t + BEIJING_OFFSET).div_euclid(width)
}

/// The Unix time a bucket index starts at.
fn index_start(index: i64, width: i64) -> i64 {
    index * width - BEIJING_OFFSET
}

fn bucket_start(t: i64, width: i64) -> i64 {
    index_start(bucket_index(t, width), width)
}

/// One bucket's figures; which are present depends on the chart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// The bucket's start, Unix seconds (a Beijing hour or midnight).
    pub start: i64,
    /// Orders paid in the bucket (paid-*), or paid of those created in it
    /// (success-ratio).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_fen: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_count: Option<i64>,
    /// paid ÷ created in ‰, rounded down; absent when nothing was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_permille: Option<i64>,
    /// Paid orders with a recorded commit (the delay's sample).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_seconds: Option<i64>,
}

/// A chart's figures over its range: one point per bucket, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    #[serde(skip)]
    pub chart: Chart,
    pub name: &'static str,
    pub from: i64,
    pub to: i64,
    pub bucket_seconds: i64,
    pub points: Vec<Point>,
}

/// The chart's series over `range`, read from the database.
pub async fn series(state: &PayState, chart: Chart, range: Range) -> Result<Series, PayError> {
    let width = chart.bucket_seconds();
    let Range { from, to } = range;
    let mut points = empty_points(range, width);
    let first = bucket_index(from, width);
    match chart {
        Chart::PaidHourly | Chart::PaidDaily => {
            for row in stats::paid_per_bucket(&state.db, from, to, width).await? {
                if let Some(p) = slot(&mut points, first, row.bucket) {
                    p.paid_count = Some(row.orders);
                    p.paid_fen = Some(row.amount_fen);
                }
            }
        }
        Chart::SuccessRatio => {
            for row in stats::created_per_bucket(&state.db, from, to, width).await? {
                if let Some(p) = slot(&mut points, first, row.bucket) {
                    p.created_count = Some(row.created);
                    p.paid_count = Some(row.paid);
                    p.ratio_permille = permille(row.paid, row.created);
                }
            }
        }
        Chart::NotifyDelay => {
            let rows = stats::delay_ranks(&state.db, from, to, width, &DELAY_PERCENTS).await?;
            for row in rows {
                if let Some(p) = slot(&mut points, first, row.bucket) {
                    p.delay_count = Some(row.orders);
                    // Both percentiles may fall on one row (few orders).
                    if row.nth == nearest_rank(row.orders, 50) {
                        p.p50_seconds = Some(row.delay);
                    }
                    if row.nth == nearest_rank(row.orders, 90) {
                        p.p90_seconds = Some(row.delay);
                    }
                }
            }
        }
    }
    fill_zeros(chart, &mut points);
    Ok(Series {
        chart,
        name: chart.name(),
        from,
        to,
        bucket_seconds: width,
        points,
    })
}

/// The point of bucket index `bucket` when the first is `first`.
fn slot(points: &mut [Point], first: i64, bucket: i64) -> Option<&mut Point> {
    usize::try_from(bucket - first)
        .ok()
        .and_then(|i| points.get_mut(i))
}

/// One point per bucket touching `[from, to)`.
fn empty_points(range: Range, width: i64) -> Vec<Point> {
    let (first, last) = (
        bucket_index(range.from, width),
        bucket_index(range.to - 1, width),
    );
    (first..=last)
        .map(|i| Point {
            start: index_start(i, width),
            ..Point::default()
        })
        .collect()
}

/// Counts are zero where no row came back; ratios and delays stay absent
/// (there is nothing to divide or rank).
fn fill_zeros(chart: Chart, points: &mut [Point]) {
    for p in points {
        match chart {
            Chart::PaidHourly | Chart::PaidDaily => {
                p.paid_count.get_or_insert(0);
                p.paid_fen.get_or_insert(0);
            }
            Chart::SuccessRatio => {
                p.created_count.get_or_insert(0);
                p.paid_count.get_or_insert(0);
            }
            Chart::NotifyDelay => {
                p.delay_count.get_or_insert(0);
            }
        }
    }
}

/// The rank (1-based) of the `percent`-th percentile among `n` values:
/// ceil(percent × n / 100), as `db::stats::delay_ranks` computes it.
pub fn nearest_rank(n: i64, percent: i64) -> i64 {
    (n * percent + 99) / 100
}

/// `part / whole` in ‰, rounded down; None when `whole` is 0.
pub fn permille(part: i64, whole: i64) -> Option<i64> {
    (whole > 0).then(|| part * 1000 / whole)
}

// ---------------------------------------------------------------- drawing

const WIDTH: i64 = 800;
const PANEL_HEIGHT: i64 = 240;
const TOP: i64 = 56;
const LEFT: i64 = 84;
const RIGHT: i64 = 24;
const PLOT_HEIGHT: i64 = 160;
const MAX_X_LABELS: usize = 8;
const BLUE: &str = "#1677ff";
const GREEN: &str = "#07c160";
const ORANGE: &str = "#fa8c16";

/// `12345` fen → `"123.45"`: integer arithmetic, never a float.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `975` ‰ → `"97.5%"`.
pub fn percent(permille: i64) -> String {
    let sign = if permille < 0 { "-" } else { "" };
    let abs = permille.unsigned_abs();
    format!("{sign}{}.{}%", abs / 10, abs % 10)
}

/// Seconds as a short Chinese duration: `"45秒"`, `"2分5秒"`, `"1时3分"`.
pub fn duration(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    match s {
        0..60 => format!("{sign}{s}秒"),
        60..3600 => format!("{sign}{}分{}秒", s / 60, s % 60),
        _ => format!("{sign}{}时{}分", s / 3600, s % 3600 / 60),
    }
}

/// Text for an SVG text node or attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Evaluated at compile time: an invalid offset fails the build.
const BEIJING: FixedOffset = match FixedOffset::east_opt(BEIJING_OFFSET as i32) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

fn beijing(t: i64) -> DateTime<FixedOffset> {
    DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .with_timezone(&BEIJING)
}

/// A bucket's label on the x axis: `"11-30"` for a day, `"11-30 14时"` for an hour.
fn bucket_label(start: i64, width: i64) -> String {
    let t = beijing(start);
    if width < DAY {
        t.format("%m-%d %H时").to_string()
    } else {
        t.format("%m-%d").to_string()
    }
}

/// How a panel draws its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Bars,
    Lines,
}

/// One line (or the bars) of a panel.
struct Line {
    name: &'static str,
    color: &'static str,
    values: Vec<Option<i64>>,
}

/// One plot: its title, how values are written, and what is drawn.
struct Panel {
    title: &'static str,
    mark: Mark,
    format: fn(i64) -> String,
    lines: Vec<Line>,
}

fn count(n: i64) -> String {
    n.to_string()
}

fn panels(series: &Series) -> Vec<Panel> {
    let take = |f: fn(&Point) -> Option<i64>| series.points.iter().map(f).collect::<Vec<_>>();
    match series.chart {
        Chart::PaidHourly | Chart::PaidDaily => vec![
            Panel {
                title: "支付金额（元）",
                mark: Mark::Bars,
                format: yuan,
                lines: vec![Line {
                    name: "金额",
                    color: BLUE,
                    values: take(|p| p.paid_fen),
                }],
            },
            Panel {
                title: "支付笔数",
                mark: Mark::Bars,
                format: count,
                lines: vec![Line {
                    name: "笔数",
                    color: GREEN,
                    values: take(|p| p.paid_count),
                }],
            },
        ],
        Chart::SuccessRatio => vec![Panel {
            title: "成功率（已支付 ÷ 当日创建）",
            mark: Mark::Lines,
            format: percent,
            lines: vec![Line {
                name: "成功率",
                color: GREEN,
                values: take(|p| p.ratio_permille),
            }],
        }],
        Chart::NotifyDelay => vec![Panel {
            title: "延迟（秒）",
            mark: Mark::Lines,
            format: duration,
            lines: vec![
                Line {
                    name: "中位数 p50",
                    color: BLUE,
                    values: take(|p| p.p50_seconds),
                },
                Line {
                    name: "p90",
                    color: ORANGE,
                    values: take(|p| p.p90_seconds),
                },
            ],
        }],
    }
}

/// Whether the series has anything to draw: a paid order, a created order,
/// a delay.
fn has_data(series: &Series) -> bool {
    series.points.iter().any(|p| {
        p.paid_count.unwrap_or(0) > 0
            || p.created_count.unwrap_or(0) > 0
            || p.delay_count.unwrap_or(0) > 0
    })
}

/// The series as a standalone SVG document.
pub fn svg(series: &Series) -> String {
    let panels = if has_data(series) {
        panels(series)
    } else {
        Vec::new()
    };
    let height = TOP + PANEL_HEIGHT * i64::try_from(panels.len().max(1)).unwrap_or(1);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" \
         width=\"{WIDTH}\" height=\"{height}\" role=\"img\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let title = series.chart.title();
    let subtitle = format!(
        "北京时间 {} 至 {}",
        beijing(series.from).format("%Y-%m-%d %H:%M"),
        beijing(series.to).format("%Y-%m-%d %H:%M")
    );
    let _ = write!(
        out,
        "<title>{}</title><rect width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"16\" font-weight=\"bold\" fill=\"#222\">{}</text>\
         <text x=\"{LEFT}\" y=\"44\" fill=\"#666\">{}</text>",
        escape(title),
        escape(title),
        escape(&subtitle)
    );
    if panels.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"18\" fill=\"#999\">暂无数据</text>",
            WIDTH / 2,
            TOP + PANEL_HEIGHT / 2
        );
    }
    let labels: Vec<String> = series
        .points
        .iter()
        .map(|p| bucket_label(p.start, series.bucket_seconds))
        .collect();
    let mut top = TOP;
    for panel in &panels {
        draw_panel(&mut out, panel, &labels, top);
        top += PANEL_HEIGHT;
    }
    out.push_str("</svg>");
    out
}

/// A "nice" step (1, 2 or 5 × 10ⁿ) giving at most 4 steps up to `max`.
fn tick_step(max: i64) -> i64 {
    let mut step = 1_i64;
    loop {
        for m in [1, 2, 5] {
            let s = step.saturating_mul(m);
            if s.saturating_mul(4) >= max {
                return s;
            }
        }
        step = step.saturating_mul(10);
    }
}

fn draw_panel(out: &mut String, panel: &Panel, labels: &[String], top: i64) {
    let plot_top = top + 28;
    let bottom = plot_top + PLOT_HEIGHT;
    let plot_width = WIDTH - LEFT - RIGHT;
    let values = || panel.lines.iter().flat_map(|l| l.values.iter().flatten());
    let max = values().copied().max().unwrap_or(0).max(1);
    let min = values().copied().min().unwrap_or(0).min(0);
    let step = tick_step(max - min);
    let (lo, hi) = (
        min.div_euclid(step) * step,
        (max + step - 1).div_euclid(step) * step,
    );
    let span = (hi - lo).max(1);
    let y = |v: i64| bottom - (v - lo) * PLOT_HEIGHT / span;
    let n = i64::try_from(labels.len().max(1)).unwrap_or(1);
    let slot = plot_width * 1000 / n; // thousandths of a unit: no float
    let x_mid = |i: i64| LEFT + (slot * i + slot / 2) / 1000;

    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"{}\" font-size=\"13\" fill=\"#333\">{}</text>",
        top + 18,
        escape(panel.title)
    );
    // Legend for several lines.
    if panel.lines.len() > 1 {
        let mut lx = WIDTH - RIGHT - 240;
        for line in &panel.lines {
            let _ = write!(
                out,
                "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\" fill=\"#333\">{}</text>",
                top + 12,
                line.color,
                lx + 16,
                top + 18,
                escape(line.name)
            );
            lx += 110;
        }
    }
    // The y axis: gridlines and their values.
    let mut v = lo;
    while v <= hi {
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{yv}\" x2=\"{}\" y2=\"{yv}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#666\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6,
            y(v) + 4,
            escape(&(panel.format)(v)),
            yv = y(v)
        );
        v += step;
    }
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"#999\"/>",
        WIDTH - RIGHT
    );
    // The x axis: at most MAX_X_LABELS labels, evenly spaced.
    let every = labels.len().div_ceil(MAX_X_LABELS).max(1);
    for (i, label) in labels.iter().enumerate().step_by(every) {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#666\">{}</text>",
            x_mid(i64::try_from(i).unwrap_or(0)),
            bottom + 16,
            escape(label)
        );
    }
    for line in &panel.lines {
        match panel.mark {
            Mark::Bars => draw_bars(out, panel, line, labels, &y, slot, lo),
            Mark::Lines => draw_line(out, panel, line, labels, &y, &x_mid),
        }
    }
}

fn draw_bars(
    out: &mut String,
    panel: &Panel,
    line: &Line,
    labels: &[String],
    y: &dyn Fn(i64) -> i64,
    slot: i64,
    lo: i64,
) {
    let bar = (slot * 7 / 10 / 1000).max(1);
    for (i, (value, label)) in line.values.iter().zip(labels).enumerate() {
        let Some(v) = *value else { continue };
        let i = i64::try_from(i).unwrap_or(0);
        let x = LEFT + (slot * i + slot * 15 / 100) / 1000;
        let (top, base) = (y(v.max(lo)), y(lo.max(0)));
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{}\" fill=\"{}\">\
             <title>{}：{}</title></rect>",
            top.min(base),
            (base - top).abs(),
            line.color,
            escape(label),
            escape(&(panel.format)(v))
        );
    }
}

fn draw_line(
    out: &mut String,
    panel: &Panel,
    line: &Line,
    labels: &[String],
    y: &dyn Fn(i64) -> i64,
    x_mid: &dyn Fn(i64) -> i64,
) {
    // A bucket without a value breaks the line rather than drawing zero.
    let mut path = String::new();
    let mut pen_down = false;
    for (i, value) in line.values.iter().enumerate() {
        let i = i64::try_from(i).unwrap_or(0);
        match value {
            Some(v) => {
                let cmd = if pen_down { 'L' } else { 'M' };
                let _ = write!(path, "{cmd}{} {} ", x_mid(i), y(*v));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    if !path.is_empty() {
        let _ = write!(
            out,
            "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
            path.trim_end(),
            line.color
        );
    }
    for (i, (value, label)) in line.values.iter().zip(labels).enumerate() {
        let Some(v) = *value else { continue };
        let _ = write!(
            out,
            "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"><title>{} {}：{}</title></circle>",
            x_mid(i64::try_from(i).unwrap_or(0)),
            y(v),
            line.color,
            escape(label),
            escape(line.name),
            escape(&(panel.format)(v))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::Reader;
    use quick_xml::events::Event;

    /// 2025-11-30T00:00:00+08:00.
    const NOV30: i64 = 1_764_432_000;

    fn series(chart: Chart, points: Vec<Point>) -> Series {
        let width = chart.bucket_seconds();
        let n = i64::try_from(points.len().max(1)).unwrap();
        Series {
            chart,
            name: chart.name(),
            from: NOV30,
            to: NOV30 + n * width,
            bucket_seconds: width,
            points,
        }
    }

    fn paid(start: i64, count: i64, fen: i64) -> Point {
        Point {
            start,
            paid_count: Some(count),
            paid_fen: Some(fen),
            ..Point::default()
        }
    }

    /// Parses `svg` as XML (failing on any error, mismatched tags
    /// included) and returns its elements' names and its text, unescaped.
    fn parse(svg: &str) -> (Vec<String>, Vec<String>) {
        let mut reader = Reader::from_str(svg);
        let (mut elements, mut texts) = (Vec::new(), Vec::new());
        // quick-xml gives `a &lt; b` as text, a reference and text again:
        // one text node is what is collected until the next tag.
        let mut text = String::new();
        let mut depth = 0;
        loop {
            let event = reader.read_event().unwrap_or_else(|e| panic!("{e}: {svg}"));
            if !matches!(event, Event::Text(_) | Event::GeneralRef(_)) && !text.is_empty() {
                texts.push(std::mem::take(&mut text));
            }
            match event {
                Event::Start(e) => {
                    depth += 1;
                    elements.push(e.name().as_ref().to_owned());
                }
                Event::Empty(e) => elements.push(e.name().as_ref().to_owned()),
                Event::End(_) => depth -= 1,
                Event::Text(t) => text.push_str(&t),
                Event::GeneralRef(r) => {
                    let c = r.resolve_char_ref().unwrap().map(String::from);
                    let named = quick_xml::escape::resolve_predefined_entity(&r).map(str::to_owned);
                    text.push_str(&c.or(named).unwrap_or_else(|| panic!("&{};", &*r)));
                }
                Event::Eof => break,
                other => panic!("unexpected {other:?} in {svg}"),
            }
        }
        assert_eq!(depth, 0, "unclosed elements: {svg}");
        assert_eq!(elements.first().map(String::as_str), Some("svg"));
        (elements, texts)
    }

    fn well_formed_without_script(svg: &str) -> Vec<String> {
        let (elements, texts) = parse(svg);
        assert!(
            elements
                .iter()
                .all(|e| !e.eq_ignore_ascii_case("script") && !e.contains("foreignObject")),
            "{elements:?}"
        );
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 800 "));
        assert!(!svg.contains("href"), "no external reference: {svg}");
        texts
    }

    #[test]
    fn every_chart_is_well_formed_xml_with_or_without_data() {
        let full = |chart: Chart| -> Vec<Point> {
            (0..30)
                .map(|i| Point {
                    start: NOV30 + i * chart.bucket_seconds(),
                    paid_count: Some(i),
                    paid_fen: Some(i * 12_345),
                    created_count: Some(i + 1),
                    ratio_permille: permille(i, i + 1),
                    delay_count: Some(i),
                    p50_seconds: (i % 3 != 0).then_some(i),
                    p90_seconds: Some(i * 7),
                })
                .collect()
        };
        for chart in Chart::ALL {
            let texts = well_formed_without_script(&svg(&series(chart, full(chart))));
            assert!(texts.iter().any(|t| t == chart.title()), "{texts:?}");
            assert!(!texts.iter().any(|t| t == "暂无数据"));
            let empty: Vec<Point> = (0..3)
                .map(|i| Point {
                    start: NOV30 + i * chart.bucket_seconds(),
                    ..Point::default()
                })
                .collect();
            let texts = well_formed_without_script(&svg(&series(chart, empty)));
            assert!(
                texts.iter().any(|t| t == "暂无数据"),
                "{chart:?}: {texts:?}"
            );
            let texts = well_formed_without_script(&svg(&series(chart, Vec::new())));
            assert!(
                texts.iter().any(|t| t == "暂无数据"),
                "{chart:?}: {texts:?}"
            );
        }
    }

    #[test]
    fn a_hostile_label_is_text_not_markup() {
        let hostile = "</text><script>alert('x')</script>&amp; \"<g>";
        let panel = Panel {
            title: hostile,
            mark: Mark::Lines,
            format: count,
            lines: vec![
                Line {
                    name: hostile,
                    color: BLUE,
                    values: vec![Some(1), None, Some(3)],
                },
                Line {
                    name: "p90",
                    color: ORANGE,
                    values: vec![Some(2), Some(2), Some(9)],
                },
            ],
        };
        let labels = vec![hostile.to_owned(), "b".to_owned(), "c".to_owned()];
        let mut out =
            String::from("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 800 300\">");
        draw_panel(&mut out, &panel, &labels, 0);
        out.push_str("</svg>");
        let texts = well_formed_without_script(&out);
        // The text reads back exactly as given, as text.
        assert!(texts.iter().any(|t| t == hostile), "{texts:?}");
        assert!(
            texts
                .iter()
                .any(|t| t == &format!("{hostile} {hostile}：1")),
            "{texts:?}"
        );
        assert_eq!(
            escape("<a href=\"x\">'&'</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\u{fffd}"
        );
    }

    #[test]
    fn money_is_written_in_yuan_exactly() {
        assert_eq!(yuan(29), "0.29");
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(100), "1.00");
        assert_eq!(yuan(1), "0.01");
        assert_eq!(yuan(123_456_789), "1234567.89");
        assert_eq!(yuan(-5), "-0.05");
        assert_eq!(yuan(i64::MIN), "-92233720368547758.08");
        // In the chart: the bar's value and the axis ticks (step 0.10).
        let texts = well_formed_without_script(&svg(&series(
            Chart::PaidDaily,
            vec![paid(NOV30, 1, 29), paid(NOV30 + DAY, 0, 0)],
        )));
        assert!(texts.iter().any(|t| t == "11-30：0.29"), "{texts:?}");
        for tick in ["0.00", "0.10", "0.20", "0.30"] {
            assert!(texts.iter().any(|t| t == tick), "{tick}: {texts:?}");
        }
        assert!(
            texts.iter().any(|t| t == "11-30：1"),
            "the count panel: {texts:?}"
        );
    }

    #[test]
    fn ratios_and_delays_are_written_from_integers() {
        assert_eq!(permille(1, 3), Some(333));
        assert_eq!(permille(0, 0), None);
        assert_eq!(percent(975), "97.5%");
        assert_eq!(percent(1000), "100.0%");
        assert_eq!(duration(45), "45秒");
        assert_eq!(duration(125), "2分5秒");
        assert_eq!(duration(3_780), "1时3分");
        assert_eq!(nearest_rank(1, 50), 1);
        assert_eq!(nearest_rank(1, 90), 1);
        assert_eq!(nearest_rank(10, 50), 5);
        assert_eq!(nearest_rank(10, 90), 9);
        assert_eq!(nearest_rank(11, 90), 10);
    }

    #[test]
    fn buckets_are_beijing_hours_and_days() {
        // 2025-11-29T16:00:00Z is Beijing midnight of 11-30.
        assert_eq!(bucket_start(NOV30 + 5, DAY), NOV30);
        assert_eq!(bucket_start(NOV30 - 1, DAY), NOV30 - DAY);
        assert_eq!(bucket_start(NOV30 + 3 * HOUR + 59, HOUR), NOV30 + 3 * HOUR);
        assert_eq!(bucket_label(NOV30 + 14 * HOUR, HOUR), "11-30 14时");
        assert_eq!(bucket_label(NOV30, DAY), "11-30");
        let points = empty_points(
            Range {
                from: NOV30,
                to: NOV30 + 2 * DAY,
            },
            DAY,
        );
        assert_eq!(
            points.iter().map(|p| p.start).collect::<Vec<_>>(),
            [NOV30, NOV30 + DAY]
        );
    }

    #[test]
    fn ranges_default_and_are_bounded() {
        let now = NOV30 + 10 * HOUR + 5;
        assert_eq!(
            range(Chart::PaidHourly, None, None, now).unwrap(),
            Range {
                from: NOV30 + 11 * HOUR - DAY,
                to: NOV30 + 11 * HOUR
            }
        );
        assert_eq!(
            range(Chart::PaidDaily, None, Some(""), now).unwrap(),
            Range {
                from: NOV30 + DAY - 30 * DAY,
                to: NOV30 + DAY
            }
        );
        let s = |t: i64| t.to_string();
        assert!(
            range(
                Chart::PaidHourly,
                Some(&s(NOV30)),
                Some(&s(NOV30 + 7 * DAY)),
                now
            )
            .is_ok()
        );
        let invalid =
            |from: &str, to: &str, chart: Chart| match range(chart, Some(from), Some(to), now) {
                Err(PayError::InvalidParam(m)) => m,
                other => panic!("{from}..{to}: {other:?}"),
            };
        assert!(
            invalid(&s(NOV30), &s(NOV30 + 7 * DAY + 1), Chart::PaidHourly)
                .contains("at most 7 days")
        );
        assert!(
            invalid(&s(NOV30), &s(NOV30 + 93 * DAY), Chart::NotifyDelay)
                .contains("at most 92 days")
        );
        assert!(invalid(&s(NOV30), &s(NOV30), Chart::PaidDaily).contains("before"));
        assert!(invalid("yesterday", &s(NOV30), Chart::PaidDaily).contains("from must be"));
        assert!(invalid(&s(NOV30), "1e9", Chart::PaidDaily).contains("to must be"));
        assert!(invalid("-1", &s(NOV30), Chart::PaidDaily).contains("from must be"));
        assert!(invalid(&s(NOV30), "99999999999999", Chart::PaidDaily).contains("to must be"));
        assert_eq!(Chart::parse("paid-daily"), Some(Chart::PaidDaily));
        assert_eq!(Chart::parse("Paid-Daily"), None);
    }
}
