//! Small inline SVG charts: one polyline per series over the same minutes, scaled to the
//! largest value of any of them. SVG elements and presentation attributes, no style or script,
//! so the CSP holds.

use maud::{html, Markup};

const WIDTH: f64 = 120.0;
const HEIGHT: f64 = 24.0;

/// One series: its CSS class (the colour) and its values, oldest first.
pub struct Series<'a> {
    pub class: &'static str,
    pub values: &'a [u64],
}

pub fn sparkline(title: &str, series: &[Series<'_>]) -> Markup {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    html! {
        svg.spark viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label=(title) preserveAspectRatio="none" {
            title { (title) }
            @for s in series {
                polyline class=(s.class) points=(points(s.values, max));
            }
        }
    }
}

fn points(values: &[u64], max: f64) -> String {
    let step = if values.len() > 1 {
        WIDTH / (values.len() - 1) as f64
    } else {
        0.0
    };
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            // One pixel of margin, so a line at zero or at the top stays visible.
            let y = HEIGHT - 1.0 - (v as f64 / max) * (HEIGHT - 2.0);
            format!("{:.1},{:.1}", i as f64 * step, y)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_value_reaches_the_top_and_zero_the_bottom() {
        assert_eq!(points(&[0, 5, 10], 10.0), "0.0,23.0 60.0,12.0 120.0,1.0");
        let svg = sparkline(
            "ok <b>",
            &[Series {
                class: "succeeded",
                values: &[1, 2],
            }],
        )
        .into_string();
        assert!(svg.contains("<polyline class=\"succeeded\""), "{svg}");
        assert!(svg.contains("ok &lt;b&gt;"), "{svg}");
    }
}
