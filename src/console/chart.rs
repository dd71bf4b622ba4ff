//! Bar charts drawn as SVG on the server. Every bar carries its label and
//! its number as text, so a chart reads the same without colour, and its
//! `<title>` and `aria-label` say what it shows to a screen reader.

use maud::{Markup, html};

/// Pixels per row of a horizontal bar chart.
const ROW: u32 = 22;
const WIDTH: u32 = 520;
/// Room for the labels left of the bars and the numbers right of them.
const LABELS: u32 = 205;
const NUMBERS: u32 = 60;
/// The widest a column gets, however few there are.
const COLUMN: u32 = 48;

/// One bar: what it counts and how many.
pub(super) struct Bar {
    pub label: String,
    pub value: u64,
}

/// A horizontal bar per row, longest for the largest value.
pub(super) fn bars(title: &str, rows: &[Bar]) -> Markup {
    let max = rows.iter().map(|r| r.value).max().unwrap_or(0).max(1);
    let span = WIDTH - LABELS - NUMBERS;
    let height = ROW * u32::try_from(rows.len()).unwrap_or(u32::MAX).max(1) + 4;
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title)
            viewBox={ "0 0 " (WIDTH) " " (height) } {
            title { (title) }
            @for (i, row) in rows.iter().enumerate() {
                @let y = ROW * u32::try_from(i).unwrap_or(0);
                @let length = scaled(row.value, max, span);
                text x=(LABELS - 8) y=(y + 15) text-anchor="end" { (shorten(&row.label, 26)) }
                rect.bar x=(LABELS) y=(y + 4) width=(length) height=(ROW - 8) {}
                text x=(LABELS + length + 6) y=(y + 15) { (row.value) }
            }
        }
    }
}

/// A vertical column per point, oldest on the left, each labelled below
/// and numbered above.
pub(super) fn columns(title: &str, points: &[Bar]) -> Markup {
    const HEIGHT: u32 = 200;
    const BASE: u32 = 170;
    let max = points.iter().map(|p| p.value).max().unwrap_or(0).max(1);
    let count = u32::try_from(points.len()).unwrap_or(1).max(1);
    let step = (WIDTH - 20) / count;
    let width = step.saturating_sub(8).clamp(4, COLUMN);
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title)
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } {
            title { (title) }
            line.axis x1="10" y1=(BASE) x2=(WIDTH - 10) y2=(BASE) {}
            @for (i, point) in points.iter().enumerate() {
                @let x = 10 + step * u32::try_from(i).unwrap_or(0);
                @let length = scaled(point.value, max, BASE - 30);
                rect.bar x=(x) y=(BASE - length) width=(width) height=(length) {}
                text x=(x + width / 2) y=(BASE - length - 4) text-anchor="middle" { (point.value) }
                text x=(x + width / 2) y=(BASE + 16) text-anchor="middle" { (shorten(&point.label, 10)) }
            }
        }
    }
}

/// `value` of `max` as a length of at most `span`; at least 1 for a value
/// above zero, so that no count shows as nothing.
fn scaled(value: u64, max: u64, span: u32) -> u32 {
    if value == 0 {
        return 0;
    }
    let length = (u128::from(value) * u128::from(span)) / u128::from(max);
    u32::try_from(length).unwrap_or(span).clamp(1, span)
}

/// At most `chars` characters, an ellipsis marking the cut.
fn shorten(label: &str, chars: usize) -> String {
    if label.chars().count() <= chars {
        return label.to_owned();
    }
    let mut short: String = label.chars().take(chars.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_value_fills_the_span_and_a_small_one_still_shows() {
        assert_eq!(scaled(50, 50, 300), 300);
        assert_eq!(scaled(1, 1_000_000, 300), 1);
        assert_eq!(scaled(0, 10, 300), 0);
    }

    #[test]
    fn a_bar_chart_writes_each_label_and_number_as_text() {
        let svg = bars(
            "Open by rule",
            &[
                Bar {
                    label: "stalled".into(),
                    value: 12,
                },
                Bar {
                    label: "<script>".into(),
                    value: 3,
                },
            ],
        )
        .into_string();
        assert!(svg.contains(">stalled</text>") && svg.contains(">12</text>"));
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
        assert!(svg.contains("<title>Open by rule</title>"));
    }

    #[test]
    fn long_labels_are_cut_with_an_ellipsis() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
