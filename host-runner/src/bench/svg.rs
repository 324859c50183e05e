//! `--svg PATH`: the answer to "from what size does converting in place beat
//! bouncing, on which platform", one row per lane. Left, the latencies
//! against range size (log-log): the in-place round trip (share, first
//! touch, unshare), the bounce through a pre-shared buffer (warm and cold)
//! and the lane's null exit as its floor. Right, their ratio (in place /
//! bounce) against size with the 1.0 line drawn: below it converting in
//! place is faster; the break-even size is marked, or the panel says it
//! never comes. Ratios need no common clock, so a lane whose guest knew
//! only cycles still gets its ratio panel (its latency panel says why it is
//! empty).

use super::analysis::{BreakEven, LaneAnalysis, SizeRow};
use super::units::{Latency, ns_text, size_text};
use crate::ktap::Bench;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

const WIDTH: u32 = 1280;
/// Per lane; the title band comes on top.
const ROW_HEIGHT: u32 = 400;
const TITLE_HEIGHT: u32 = 64;

// Okabe–Ito colours: safe for colour blindness.
const IN_PLACE: RGBColor = RGBColor(213, 94, 0);
const WARM: RGBColor = RGBColor(0, 114, 178);
const COLD: RGBColor = RGBColor(86, 180, 233);
const FLOOR: RGBColor = RGBColor(90, 90, 90);
const EVEN: RGBColor = RGBColor(0, 158, 115);

/// The SVG text and the lanes left out (with why).
pub struct Plot {
    pub svg: String,
    pub omitted: Vec<String>,
}

/// (size, value) points of one line.
type Points = Vec<(f64, f64)>;

/// What one lane's row shows.
struct Row {
    lane: String,
    in_place: Points,
    warm: Points,
    cold: Points,
    floor: Option<f64>,
    /// in place / warm bounce, in place / cold bounce.
    ratio_warm: Points,
    ratio_cold: Points,
    vs_warm: BreakEven,
    vs_cold: BreakEven,
    /// Why the latency panel is empty, when it is.
    no_latency: Option<&'static str>,
}

fn ns_points(rows: &[SizeRow], pick: fn(&SizeRow) -> Option<Latency>) -> Points {
    rows.iter()
        .filter_map(|r| Some((r.size as f64, pick(r)?.ns? as f64)))
        .collect()
}

fn ratio_points(rows: &[SizeRow], bounce: fn(&SizeRow) -> Option<Latency>) -> Points {
    rows.iter()
        .filter_map(|r| Some((r.size as f64, r.round_trip_per_bounce(bounce(r))?)))
        .filter(|&(_, v)| v > 0.0)
        .collect()
}

fn row_of(lane: &str, bench: &[Bench]) -> Row {
    let a = LaneAnalysis::of(bench);
    let in_place = ns_points(&a.rows, |r| r.io_round_trip);
    let warm = ns_points(&a.rows, |r| r.bounce_warm);
    let cold = ns_points(&a.rows, |r| r.bounce_cold);
    let no_latency = if a.rows.is_empty() {
        Some("no per-size bench lines")
    } else if in_place.is_empty() && warm.is_empty() && cold.is_empty() {
        Some("cycles only (the guest did not know its counter frequency)")
    } else {
        None
    };
    Row {
        lane: lane.to_string(),
        in_place,
        warm,
        cold,
        floor: a.null_exit.and_then(|l| l.ns).map(|n| n as f64),
        ratio_warm: ratio_points(&a.rows, |r| r.bounce_warm),
        ratio_cold: ratio_points(&a.rows, |r| r.bounce_cold),
        vs_warm: a.vs_warm,
        vs_cold: a.vs_cold,
        no_latency,
    }
}

/// One lane's answer in words: the break-even against the warm bounce.
fn verdict(vs_warm: BreakEven) -> String {
    match vs_warm {
        BreakEven::From(b) => format!("in place beats a warm bounce from {} up", size_text(b)),
        BreakEven::Never { up_to } => {
            format!(
                "in place never beats a warm bounce up to {}",
                size_text(up_to)
            )
        }
        BreakEven::NotMeasured => "no size has both paths".into(),
    }
}

/// A decade tick without trailing zeros: `1 µs`, `10 µs`, `100 ms`.
fn tick_text(ns: u64) -> String {
    let t = ns_text(ns);
    match t.split_once(' ') {
        Some((num, unit)) if num.contains('.') => {
            let num = num.trim_end_matches('0').trim_end_matches('.');
            format!("{num} {unit}")
        }
        _ => t,
    }
}

/// A ratio tick: `0.1×`, `1×`, `10×`.
fn ratio_text(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}×")
    } else {
        let s = format!("{v:.3}");
        format!("{}×", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// Powers of `base` around `lo..hi`, so the axis starts and ends on a tick.
fn snap(lo: f64, hi: f64, base: f64) -> (f64, f64) {
    // The epsilon keeps an exact power (log10(1000) = 2.9999…) on itself.
    let lo = base.powf((lo.log(base) + 1e-9).floor());
    let mut hi = base.powf((hi.log(base) - 1e-9).ceil());
    if hi <= lo {
        hi = lo * base;
    }
    (lo, hi)
}

fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
        })
}

/// Draws every lane into an SVG document.
pub fn render(lanes: &[(&str, &[Bench])]) -> Result<Plot, String> {
    let rows: Vec<Row> = lanes.iter().map(|(l, b)| row_of(l, b)).collect();
    let omitted: Vec<String> = rows
        .iter()
        .filter(|r| r.ratio_warm.is_empty() && r.ratio_cold.is_empty() && r.no_latency.is_some())
        .map(|r| format!("{}: {}", r.lane, r.no_latency.unwrap_or("nothing measured")))
        .collect();
    let drawn: Vec<&Row> = rows
        .iter()
        .filter(|r| !(r.ratio_warm.is_empty() && r.ratio_cold.is_empty() && r.no_latency.is_some()))
        .collect();
    if drawn.is_empty() {
        return Err(format!(
            "nothing to plot: no lane has per-size figures ({})",
            if omitted.is_empty() {
                "no lanes".to_string()
            } else {
                omitted.join("; ")
            }
        ));
    }
    // One size axis for every panel, so rows line up.
    let sizes = drawn
        .iter()
        .flat_map(|r| r.ratio_warm.iter().chain(&r.ratio_cold).chain(&r.in_place))
        .map(|p| p.0);
    let (x_lo, x_hi) = span(sizes).ok_or("no sizes")?;
    let x = snap(x_lo / 1.5, x_hi * 1.5, 2.0);
    let height = TITLE_HEIGHT + ROW_HEIGHT * drawn.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (title, body) = root.split_vertically(TITLE_HEIGHT);
        draw_title(&title, &omitted).map_err(|e| e.to_string())?;
        let cells = body.split_evenly((drawn.len(), 2));
        for (i, row) in drawn.iter().enumerate() {
            latency_panel(&cells[2 * i], row, x)?;
            ratio_panel(&cells[2 * i + 1], row, x)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(Plot { svg, omitted })
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn draw_title(
    area: &Area<'_>,
    omitted: &[String],
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    area.draw(&Text::new(
        "convtest bench: convert the buffer in place, or bounce it through a shared one?",
        (16, 10),
        ("sans-serif", 22).into_font().style(FontStyle::Bold),
    ))?;
    let mut note = String::from(
        "p50 per range size. Nested lanes run under TCG: compare within a row; the ratios are the point.",
    );
    for o in omitted {
        note.push_str(&format!("  Not drawn: {o}."));
    }
    area.draw(&Text::new(
        note,
        (16, 40),
        ("sans-serif", 14).into_font().color(&FLOOR),
    ))?;
    Ok(())
}

/// Both panels: log size against a log value.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>;

fn mesh_style(
    chart: &mut Chart<'_, '_>,
    y_desc: &str,
    y_fmt: &dyn Fn(&f64) -> String,
) -> Result<(), String> {
    chart
        .configure_mesh()
        .x_desc("range size")
        .y_desc(y_desc)
        .x_labels(12)
        .y_labels(10)
        .x_label_formatter(&|v| size_text(v.round() as u64))
        .y_label_formatter(y_fmt)
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 12))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.10))
        .draw()
        .map_err(|e| e.to_string())
}

fn line_with_marks(
    chart: &mut Chart<'_, '_>,
    pts: &Points,
    colour: RGBColor,
    dashed: bool,
    label: &str,
) -> Result<(), String> {
    if pts.is_empty() {
        return Ok(());
    }
    let style = colour.stroke_width(if dashed { 2 } else { 3 });
    let drawn = if dashed {
        chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 8, 5, style))
    } else {
        chart.draw_series(LineSeries::new(pts.iter().copied(), style))
    }
    .map_err(|e| e.to_string())?;
    drawn
        .label(label.to_string())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3)));
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A vertical dashed line at the size from which in place beats the
/// `which` bounce, in that bounce's colour, labelled.
fn mark_break_even(
    chart: &mut Chart<'_, '_>,
    at: u64,
    (which, colour): (&str, RGBColor),
    (y_lo, y_hi): (f64, f64),
    label_y: f64,
) -> Result<(), String> {
    let x = at as f64;
    chart
        .draw_series(DashedLineSeries::new(
            [(x, y_lo), (x, y_hi)],
            6,
            4,
            colour.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(std::iter::once(Text::new(
            format!(" break-even vs {which}: {}", size_text(at)),
            (x, label_y),
            ("sans-serif", 13).into_font().color(&colour),
        )))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn latency_panel(area: &Area<'_>, row: &Row, x: (f64, f64)) -> Result<(), String> {
    let caption = format!("{}: latency", row.lane);
    let ys = row
        .in_place
        .iter()
        .chain(&row.warm)
        .chain(&row.cold)
        .map(|p| p.1)
        .chain(row.floor);
    let Some((lo, hi)) = span(ys) else {
        let why = row.no_latency.unwrap_or("nothing to draw");
        area.draw(&Text::new(
            format!("{caption}: not drawn, {why}"),
            (20, 30),
            ("sans-serif", 15).into_font(),
        ))
        .map_err(|e| e.to_string())?;
        return Ok(());
    };
    let y = snap(lo, hi, 10.0);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 17))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x.0..x.1).log_scale().base(2.0), (y.0..y.1).log_scale())
        .map_err(|e| e.to_string())?;
    mesh_style(&mut chart, "p50 latency", &|v| tick_text(v.round() as u64))?;
    if let Some(floor) = row.floor {
        chart
            .draw_series(DashedLineSeries::new(
                [(x.0, floor), (x.1, floor)],
                3,
                4,
                FLOOR.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(format!(
                "null exit (floor) {}",
                ns_text(floor.round() as u64)
            ))
            .legend(|(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + 24, y)], 3, 4, FLOOR.stroke_width(2))
            });
    }
    line_with_marks(
        &mut chart,
        &row.in_place,
        IN_PLACE,
        false,
        "in place: share, touch, unshare",
    )?;
    line_with_marks(&mut chart, &row.warm, WARM, false, "bounce (warm)")?;
    line_with_marks(&mut chart, &row.cold, COLD, true, "bounce (cold)")?;
    if let BreakEven::From(b) = row.vs_warm {
        mark_break_even(&mut chart, b, ("warm", WARM), y, y.0 * 1.3)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())
}

fn ratio_panel(area: &Area<'_>, row: &Row, x: (f64, f64)) -> Result<(), String> {
    let caption = format!("{}: in place / bounce — {}", row.lane, verdict(row.vs_warm));
    let ys = row.ratio_warm.iter().chain(&row.ratio_cold).map(|p| p.1);
    let Some((lo, hi)) = span(ys.chain([1.0])) else {
        area.draw(&Text::new(
            format!("{}: no size has both paths", row.lane),
            (20, 30),
            ("sans-serif", 15).into_font(),
        ))
        .map_err(|e| e.to_string())?;
        return Ok(());
    };
    let y = snap(lo / 1.5, hi * 1.5, 10.0);
    // A hair past the decades, so both end ticks are drawn.
    let y = (y.0 * 0.999, y.1 * 1.001);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(10)
        .margin_right(28)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x.0..x.1).log_scale().base(2.0), (y.0..y.1).log_scale())
        .map_err(|e| e.to_string())?;
    // Below 1.0 converting in place is the faster path: shaded.
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(x.0, y.0), (x.1, 1.0)],
            EVEN.mix(0.08).filled(),
        )))
        .map_err(|e| e.to_string())?;
    mesh_style(&mut chart, "in place / bounce (p50)", &|v| ratio_text(*v))?;
    chart
        .draw_series(LineSeries::new(
            [(x.0, 1.0), (x.1, 1.0)],
            BLACK.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series([
            Text::new(
                "1.0: both paths cost the same".to_string(),
                (x.0 * 1.1, 1.25),
                ("sans-serif", 12).into_font(),
            ),
            Text::new(
                "below: in place is faster".to_string(),
                (x.0 * 1.1, 1.0 / 1.35),
                ("sans-serif", 12).into_font().color(&EVEN),
            ),
        ])
        .map_err(|e| e.to_string())?;
    line_with_marks(&mut chart, &row.ratio_warm, WARM, false, "vs warm bounce")?;
    line_with_marks(&mut chart, &row.ratio_cold, COLD, true, "vs cold bounce")?;
    if let BreakEven::From(b) = row.vs_warm {
        mark_break_even(&mut chart, b, ("warm", WARM), y, y.0 * 1.3)?;
    }
    if let BreakEven::From(c) = row.vs_cold {
        mark_break_even(&mut chart, c, ("cold", COLD), y, y.0 * 2.2)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;

    fn plot() -> Plot {
        let lanes = sample::three_lanes();
        let refs: Vec<(&str, &[Bench])> = lanes.iter().map(|(l, b)| (*l, b.as_slice())).collect();
        render(&refs).expect("draws")
    }

    /// Every `<text>` element's content, via a real XML reader.
    fn texts(svg: &str) -> Vec<String> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(svg);
        let mut out = Vec::new();
        let mut in_text = false;
        loop {
            match reader.read_event().expect("well-formed SVG") {
                Event::Start(e) if e.name().as_ref() == b"text" => in_text = true,
                Event::End(e) if e.name().as_ref() == b"text" => in_text = false,
                Event::Text(t) if in_text => {
                    out.push(t.decode().expect("UTF-8").trim().to_string());
                }
                Event::Eof => break,
                _ => {}
            }
        }
        out
    }

    #[test]
    fn each_lane_gets_its_latency_and_ratio_panel_with_the_answer() {
        let p = plot();
        assert!(p.omitted.is_empty());
        assert!(p.svg.starts_with("<svg"), "{}", &p.svg[..80]);
        let t = texts(&p.svg);
        for (lane, bench) in sample::three_lanes() {
            assert!(t.contains(&format!("{lane}: latency")), "{lane}: {t:?}");
            let a = LaneAnalysis::of(&bench);
            let ratio = format!("{lane}: in place / bounce — {}", verdict(a.vs_warm));
            assert!(t.contains(&ratio), "{ratio}: {t:?}");
            if let BreakEven::From(b) = a.vs_warm {
                let mark = format!("break-even vs warm: {}", size_text(b));
                assert!(t.contains(&mark), "{mark}: {t:?}");
            }
        }
        for want in [
            "in place: share, touch, unshare",
            "bounce (warm)",
            "bounce (cold)",
            "null exit (floor) 120 µs",
            "vs warm bounce",
            "1.0: both paths cost the same",
            "range size",
            "p50 latency",
            "4 KiB",
            "2 MiB",
            "1×",
        ] {
            assert!(t.iter().any(|s| s == want), "{want}: {t:?}");
        }
    }

    #[test]
    fn the_verdict_names_the_break_even_or_says_it_never_comes() {
        assert_eq!(
            verdict(BreakEven::From(32 * 1024)),
            "in place beats a warm bounce from 32 KiB up"
        );
        assert_eq!(
            verdict(BreakEven::Never { up_to: 2 << 20 }),
            "in place never beats a warm bounce up to 2 MiB"
        );
    }

    #[test]
    fn a_cycles_only_lane_keeps_its_ratio_panel_and_nothing_is_an_error() {
        let ns = sample::lane("nested-x86", sample::Shape::X86Stock);
        let cy = sample::lane("nested-arm64-pkvm", sample::Shape::Arm64CyclesOnly);
        let p = render(&[("nested-x86", &ns), ("nested-arm64-pkvm", &cy)]).expect("draws");
        assert!(p.omitted.is_empty(), "{:?}", p.omitted);
        let t = texts(&p.svg);
        assert!(
            t.iter()
                .any(|s| s.starts_with("nested-arm64-pkvm: latency: not drawn, cycles only")),
            "{t:?}"
        );
        assert!(
            t.iter()
                .any(|s| s.starts_with("nested-arm64-pkvm: in place / bounce")),
            "{t:?}"
        );
        assert!(render(&[]).is_err());
        let e = render(&[("empty", &[][..])])
            .err()
            .expect("nothing to draw");
        assert!(e.contains("nothing to plot"), "{e}");
    }

    #[test]
    fn ticks_drop_trailing_zeros() {
        assert_eq!(tick_text(1_000), "1 µs");
        assert_eq!(tick_text(10_000), "10 µs");
        assert_eq!(tick_text(100_000_000), "100 ms");
        assert_eq!(tick_text(1_500), "1.5 µs");
        assert_eq!(tick_text(100), "100 ns");
        assert_eq!(ratio_text(0.1), "0.1×");
        assert_eq!(ratio_text(1.0), "1×");
        assert_eq!(ratio_text(100.0), "100×");
        assert_eq!(ratio_text(0.01), "0.01×");
    }

    #[test]
    fn axes_snap_to_powers() {
        assert_eq!(snap(2730.0, 3_145_728.0, 2.0), (2048.0, 4_194_304.0));
        assert_eq!(snap(2900.0, 9_000_000.0, 10.0), (1000.0, 10_000_000.0));
        assert_eq!(snap(1000.0, 1000.0, 10.0), (1000.0, 10_000.0));
    }
}
