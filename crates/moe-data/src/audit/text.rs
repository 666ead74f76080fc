//! How the audit writes a share and a piece of text, for its findings
//! (`rules`) and its report (`render`) alike.

/// A share as a percentage with one decimal; a share that is not 0 or 1
/// never prints as `0.0%` or `100.0%`.
pub fn pct(share: f64) -> String {
    match share {
        s if s > 0.0 && s < 0.0005 => "<0.1%".into(),
        s if (0.9995..1.0).contains(&s) => ">99.9%".into(),
        s => format!("{:.1}%", 100.0 * s),
    }
}

/// `text` as an inline code span, quoted and escaped like a Rust string
/// (so whitespace and invisible characters are visible).
pub fn code(text: &str) -> String {
    let quoted = format!("{text:?}");
    let fence = if quoted.contains('`') { "``" } else { "`" };
    let pad = if quoted.contains('`') { " " } else { "" };
    format!("{fence}{pad}{quoted}{pad}{fence}")
}
