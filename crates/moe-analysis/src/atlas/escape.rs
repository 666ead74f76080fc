//! The atlas's two escapes (ATLAS-4): every string from the data goes
//! through [`html`] into text or an attribute, and every JSON value
//! embedded in a `<script>` goes through [`json_in_script`].

use serde::Serialize;

/// `s` as HTML text or a quoted attribute value: `& < > " '` escaped.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `value` as JSON that cannot end or confuse the `<script>` holding it:
/// `<`, `>`, `&` and the JavaScript line terminators U+2028/U+2029 as
/// `\u` escapes (valid JSON, the same value once parsed).
pub fn json_in_script<T: Serialize>(value: &T) -> serde_json::Result<String> {
    let text = serde_json::to_string(value)?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // ATLAS-4
    #[test]
    fn atlas_4_escapes() {
        let planted = "</script><img src=x onerror=\"alert('x')\"> & \u{2028}";
        let h = html(planted);
        assert!(!h.contains('<') && !h.contains('>') && !h.contains('"'));
        assert_eq!(html("a&b"), "a&amp;b");
        let j = json_in_script(&planted).unwrap();
        for bad in ["<", ">", "&", "\u{2028}"] {
            assert!(!j.contains(bad), "{bad} in {j}");
        }
        let back: String = serde_json::from_str(&j).unwrap();
        assert_eq!(back, planted);
    }
}
