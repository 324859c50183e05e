//! `--svg PATH`: latency against range size, log-log, one line per op per
//! lane, each lane's null exit drawn across as its floor. Lanes differ by
//! line dash and marker, ops by colour; the legend (right of the plot)
//! names both. Only lanes with ns are drawn: cycles of different counters
//! share no axis.

use super::analysis::{LaneAnalysis, SizeRow};
use super::ops;
use super::units::{Latency, ns_text, size_text};
use crate::ktap::Bench;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 760;
/// The legend's share of the width, right of the plot.
const LEGEND_WIDTH: u32 = 345;

/// The ops drawn, with their colours (Okabe–Ito: safe for colour blindness).
const OPS: [(&str, RGBColor); 5] = [
    (ops::SHARE, RGBColor(0, 114, 178)),
    (ops::UNSHARE, RGBColor(86, 180, 233)),
    (ops::IO_ROUND_TRIP, RGBColor(213, 94, 0)),
    (ops::BOUNCE_WARM, RGBColor(0, 158, 115)),
    (ops::BOUNCE_COLD, RGBColor(230, 159, 0)),
];
const FLOOR: RGBColor = RGBColor(90, 90, 90);

/// How a lane's lines look: dash (`None`: solid), marker, and the dash of
/// its floor (always dashed and grey, so it never reads as an op's line;
/// the three floors' dashes differ more than the lanes' lines do, since
/// floors of similar height overlap).
#[derive(Clone, Copy)]
struct LaneStyle {
    dash: Option<(u32, u32)>,
    marker: Marker,
    floor_dash: (u32, u32),
}

#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Triangle,
    Square,
}

const LANE_STYLES: [LaneStyle; 3] = [
    LaneStyle {
        dash: None,
        marker: Marker::Circle,
        floor_dash: (18, 6),
    },
    LaneStyle {
        dash: Some((10, 6)),
        marker: Marker::Triangle,
        floor_dash: (6, 6),
    },
    LaneStyle {
        dash: Some((3, 4)),
        marker: Marker::Square,
        floor_dash: (2, 5),
    },
];

/// The SVG text and the lanes left out (with why).
pub struct Plot {
    pub svg: String,
    pub omitted: Vec<String>,
}

/// One op's line: its name, colour and (size, ns) points.
type OpLine = (&'static str, RGBColor, Vec<(f64, f64)>);

/// One lane's lines in ns and its floor.
struct LaneLines {
    lane: String,
    style: LaneStyle,
    lines: Vec<OpLine>,
    floor: Option<f64>,
}

fn ns_of(l: Option<Latency>) -> Option<f64> {
    l.and_then(|l| l.ns).map(|n| n as f64)
}

fn column(r: &SizeRow, op: &str) -> Option<Latency> {
    match op {
        ops::SHARE => r.share,
        ops::UNSHARE => r.unshare,
        ops::IO_ROUND_TRIP => r.io_round_trip,
        ops::BOUNCE_WARM => r.bounce_warm,
        ops::BOUNCE_COLD => r.bounce_cold,
        _ => None,
    }
}

fn lines_of(lanes: &[(&str, &[Bench])]) -> (Vec<LaneLines>, Vec<String>) {
    let mut drawn = Vec::new();
    let mut omitted = Vec::new();
    for (lane, bench) in lanes {
        let a = LaneAnalysis::of(bench);
        let lines: Vec<_> = OPS
            .iter()
            .map(|&(op, colour)| {
                let pts: Vec<(f64, f64)> = a
                    .rows
                    .iter()
                    .filter_map(|r| Some((r.size as f64, ns_of(column(r, op))?)))
                    .collect();
                (op, colour, pts)
            })
            .filter(|(.., pts)| !pts.is_empty())
            .collect();
        if lines.is_empty() {
            omitted.push(format!(
                "{lane}: {}",
                if a.rows.is_empty() {
                    "no per-size bench lines"
                } else {
                    "cycles only (the guest did not know its counter frequency)"
                }
            ));
            continue;
        }
        drawn.push(LaneLines {
            lane: (*lane).to_string(),
            style: LANE_STYLES[drawn.len() % LANE_STYLES.len()],
            lines,
            floor: ns_of(a.null_exit),
        });
    }
    (drawn, omitted)
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

/// Draws every lane with ns into an SVG document.
pub fn render(lanes: &[(&str, &[Bench])]) -> Result<Plot, String> {
    let (drawn, omitted) = lines_of(lanes);
    if drawn.is_empty() {
        return Err(format!(
            "nothing to plot: no lane has per-size ns ({})",
            if omitted.is_empty() {
                "no lanes".to_string()
            } else {
                omitted.join("; ")
            }
        ));
    }
    let all = || {
        drawn
            .iter()
            .flat_map(|l| l.lines.iter().flat_map(|(.., p)| p.iter()))
    };
    let fold = |it: &mut dyn Iterator<Item = f64>| {
        it.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let (x_lo, x_hi) = fold(&mut all().map(|p| p.0));
    let (y_lo, y_hi) = fold(
        &mut all()
            .map(|p| p.1)
            .chain(drawn.iter().filter_map(|l| l.floor)),
    );
    // Half a doubling of margin either side, ticks on powers of two.
    let (x_lo, x_hi) = snap(x_lo / 1.5, x_hi * 1.5, 2.0);
    let (y_lo, y_hi) = snap(y_lo, y_hi, 10.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (plot_area, legend_area) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(
                "convtest bench: p50 latency against range size (log-log)",
                ("sans-serif", 22),
            )
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(84)
            .build_cartesian_2d((x_lo..x_hi).log_scale().base(2.0), (y_lo..y_hi).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("range size (bytes)")
            .y_desc("latency (ns; ticks in ns, µs, ms)")
            .x_labels(14)
            .y_labels(12)
            .x_label_formatter(&|v| size_text(v.round() as u64))
            .y_label_formatter(&|v| tick_text(v.round() as u64))
            .axis_desc_style(("sans-serif", 17))
            .label_style(("sans-serif", 14))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .draw()
            .map_err(|e| e.to_string())?;
        draw_floors(&mut chart, &drawn, (x_lo, x_hi))?;
        for lane in &drawn {
            for (_, colour, pts) in &lane.lines {
                let style = colour.stroke_width(2);
                match lane.style.dash {
                    None => chart.draw_series(LineSeries::new(pts.iter().copied(), style)),
                    Some((on, off)) => chart.draw_series(DashedLineSeries::new(
                        pts.iter().copied(),
                        on,
                        off,
                        style,
                    )),
                }
                .map_err(|e| e.to_string())?;
                // Markers in pixels around each point: the same size at every
                // point of a log axis.
                let fill = colour.filled();
                let at = pts.iter().copied();
                match lane.style.marker {
                    Marker::Circle => chart
                        .draw_series(at.map(|p| Circle::new(p, 4, fill)))
                        .map(|_| ()),
                    Marker::Triangle => chart
                        .draw_series(at.map(|p| TriangleMarker::new(p, 5, fill)))
                        .map(|_| ()),
                    Marker::Square => chart
                        .draw_series(at.map(|p| {
                            EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], fill)
                        }))
                        .map(|_| ()),
                }
                .map_err(|e| e.to_string())?;
            }
        }
        draw_legend(&legend_area, &drawn, &omitted).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(Plot { svg, omitted })
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>;

/// Each lane's null exit across the whole plot. Not labelled in the plot
/// (a label there would cross the data); the legend names each floor's
/// dash and value.
fn draw_floors(
    chart: &mut Chart<'_, '_>,
    drawn: &[LaneLines],
    (x_lo, x_hi): (f64, f64),
) -> Result<(), String> {
    for lane in drawn {
        let Some(floor) = lane.floor else { continue };
        let (on, off) = lane.style.floor_dash;
        chart
            .draw_series(DashedLineSeries::new(
                [(x_lo, floor), (x_hi, floor)],
                on,
                off,
                FLOOR.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Sample line, marker and name per entry, lane by lane, then the lanes
/// left out.
fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    drawn: &[LaneLines],
    omitted: &[String],
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let text = ("sans-serif", 14).into_font();
    let heading = ("sans-serif", 15).into_font().style(FontStyle::Bold);
    let (x0, mut y) = (10, 40);
    let sample = |area: &DrawingArea<SVGBackend<'_>, Shift>,
                  y: i32,
                  colour: RGBColor,
                  width: u32,
                  dash: Option<(u32, u32)>,
                  m: Option<Marker>|
     -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
        let pts = vec![(x0, y), (x0 + 40, y)];
        let style = colour.stroke_width(width);
        match dash {
            None => area.draw(&PathElement::new(pts, style))?,
            Some((on, off)) => area.draw(&DashedPathElement::new(pts, on, off, style))?,
        }
        let (at, fill) = ((x0 + 20, y), colour.filled());
        match m {
            Some(Marker::Circle) => area.draw(&Circle::new(at, 4, fill))?,
            Some(Marker::Triangle) => area.draw(&TriangleMarker::new(at, 5, fill))?,
            Some(Marker::Square) => {
                area.draw(&Rectangle::new(
                    [(at.0 - 4, at.1 - 4), (at.0 + 4, at.1 + 4)],
                    fill,
                ))?;
            }
            None => {}
        }
        Ok(())
    };
    for lane in drawn {
        area.draw(&Text::new(lane.lane.clone(), (x0, y - 8), heading.clone()))?;
        y += 20;
        for (op, colour, _) in &lane.lines {
            sample(
                area,
                y,
                *colour,
                2,
                lane.style.dash,
                Some(lane.style.marker),
            )?;
            area.draw(&Text::new(
                format!("{} · {op}", lane.lane),
                (x0 + 50, y - 8),
                text.clone(),
            ))?;
            y += 19;
        }
        if let Some(floor) = lane.floor {
            sample(area, y, FLOOR, 1, Some(lane.style.floor_dash), None)?;
            area.draw(&Text::new(
                format!(
                    "{} · null exit (floor) {}",
                    lane.lane,
                    ns_text(floor.round() as u64)
                ),
                (x0 + 50, y - 8),
                text.clone(),
            ))?;
            y += 19;
        }
        y += 14;
    }
    for o in omitted {
        area.draw(&Text::new(
            format!("not plotted: {o}"),
            (x0, y),
            text.clone(),
        ))?;
        y += 19;
    }
    let note = ("sans-serif", 13).into_font().color(&FLOOR);
    for line in [
        "Nested lanes run under TCG: absolute",
        "times are not hardware times; compare",
        "within a lane, the ratios are the point.",
    ] {
        area.draw(&Text::new(line, (x0, y), note.clone()))?;
        y += 17;
    }
    Ok(())
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
    fn every_lane_and_op_is_named_and_the_axes_carry_units() {
        let p = plot();
        assert!(p.omitted.is_empty());
        assert!(p.svg.starts_with("<svg"), "{}", &p.svg[..80]);
        let t = texts(&p.svg);
        for (lane, _) in sample::three_lanes() {
            for op in OPS.map(|(op, _)| op) {
                let entry = format!("{lane} · {op}");
                assert!(t.contains(&entry), "legend lacks {entry}: {t:?}");
            }
            let floor = format!("{lane} · null exit (floor) ");
            assert!(t.iter().any(|s| s.starts_with(&floor)), "{floor}");
        }
        assert!(t.iter().any(|s| s == "range size (bytes)"), "{t:?}");
        assert!(t.iter().any(|s| s.starts_with("latency (ns")), "{t:?}");
        assert!(
            t.iter()
                .any(|s| s == "nested-x86 · null exit (floor) 120 µs"),
            "{t:?}"
        );
        assert!(
            t.iter().any(|s| s == "4 KiB") && t.iter().any(|s| s == "2 MiB"),
            "{t:?}"
        );
        assert!(
            t.iter().any(|s| s == "10 µs") && t.iter().any(|s| s == "1 ms"),
            "{t:?}"
        );
    }

    #[test]
    fn cycles_only_lanes_are_left_out_by_name_and_nothing_is_an_error() {
        let ns = sample::lane("nested-x86", sample::Shape::X86Stock);
        let cy = sample::lane("nested-arm64-pkvm", sample::Shape::Arm64CyclesOnly);
        let p = render(&[("nested-x86", &ns), ("nested-arm64-pkvm", &cy)]).expect("draws");
        assert_eq!(p.omitted.len(), 1);
        assert!(p.omitted[0].starts_with("nested-arm64-pkvm: cycles only"));
        assert!(
            texts(&p.svg)
                .iter()
                .any(|s| s.starts_with("not plotted: nested-arm64-pkvm"))
        );
        let e = render(&[("nested-arm64-pkvm", &cy)])
            .err()
            .expect("nothing to draw");
        assert!(e.contains("nothing to plot"), "{e}");
        assert!(render(&[]).is_err());
    }

    #[test]
    fn ticks_drop_trailing_zeros() {
        assert_eq!(tick_text(1_000), "1 µs");
        assert_eq!(tick_text(10_000), "10 µs");
        assert_eq!(tick_text(100_000_000), "100 ms");
        assert_eq!(tick_text(1_500), "1.5 µs");
        assert_eq!(tick_text(100), "100 ns");
    }

    #[test]
    fn axes_snap_to_powers() {
        assert_eq!(snap(2730.0, 3_145_728.0, 2.0), (2048.0, 4_194_304.0));
        assert_eq!(snap(2900.0, 9_000_000.0, 10.0), (1000.0, 10_000_000.0));
        assert_eq!(snap(1000.0, 1000.0, 10.0), (1000.0, 10_000.0));
    }
}
