//! The figures docs/scale.md states: the table between `<!-- scale:figures -->` and
//! `<!-- /scale:figures -->`, one figure a row (`| \`name\` | value | unit | what |`), checked
//! against what a sample measured.

use crate::figures::Figure;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/scale.md");
const BEGIN: &str = "<!-- scale:figures -->";
const END: &str = "<!-- /scale:figures -->";

/// The figures table as the document has it: (name, value).
fn stated() -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(DOC).unwrap_or_else(|e| panic!("{DOC}: {e}"));
    let start = text
        .find(BEGIN)
        .unwrap_or_else(|| panic!("{DOC} has no {BEGIN}"));
    let end = text
        .find(END)
        .unwrap_or_else(|| panic!("{DOC} has no {END}"));
    text[start + BEGIN.len()..end]
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let value = cells.get(2)?.replace(',', "").parse().ok()?;
            Some((name.to_string(), value))
        })
        .collect()
}

/// A value as the document writes it: three significant digits, thousands separated.
pub fn format(value: f64) -> String {
    let decimals = if value.fract() == 0.0 {
        0
    } else {
        (2 - value.abs().log10().floor() as i32).max(0) as usize
    };
    let text = format!("{value:.decimals$}");
    let (whole, fraction) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let (sign, digits) = whole.strip_prefix('-').map_or(("", whole), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match fraction {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// The table as it should read, for the document.
pub fn table(figures: &[Figure]) -> String {
    let mut out = format!("{BEGIN}\n| figure | value | unit | what |\n|---|---:|---|---|\n");
    for f in figures {
        out += &format!(
            "| `{}` | {} | {} | {} |\n",
            f.name,
            format(f.value),
            f.unit,
            f.what
        );
    }
    out + END
}

/// Every figure measured must be in the document, within `tolerance` (relative) of its value
/// there; the document may not state figures nobody measures. Panics listing every drift.
pub fn check(figures: &[Figure], tolerance: f64) {
    let stated = stated();
    let mut drifts = Vec::new();
    for f in figures {
        match stated.iter().find(|(name, _)| name == f.name) {
            None => drifts.push(format!(
                "{}: not in the document (measured {})",
                f.name,
                format(f.value)
            )),
            Some((_, value)) => {
                let off = (f.value - value).abs() / value.abs().max(f64::MIN_POSITIVE);
                if off > tolerance {
                    drifts.push(format!(
                        "{}: the document says {}, measured {} ({:+.1}%)",
                        f.name,
                        format(*value),
                        format(f.value),
                        100.0 * (f.value - value) / value
                    ));
                }
            }
        }
    }
    for (name, _) in &stated {
        if !figures.iter().any(|f| f.name == name) {
            drifts.push(format!("{name}: in the document, but nothing measures it"));
        }
    }
    assert!(
        drifts.is_empty(),
        "docs/scale.md drifted from the simulation (tolerance ±{:.0}%):\n  {}\n\nIf the change is intended, \
         run scripts/scale and put its table into docs/scale.md (and revisit the prose):\n{}",
        100.0 * tolerance,
        drifts.join("\n  "),
        table(figures)
    );
}
