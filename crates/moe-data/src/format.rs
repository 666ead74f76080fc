//! Turning a row's fields into one document's text (FMT-*): `{field}`
//! templates, GSM8K calculator-annotation stripping, WikiText artifact repair,
//! and rebuilding WikiText articles from its one-line-per-row layout.

/// A parsed `{field}` template. `{{` and `}}` are literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// Index into the source's `fields`.
    Field(usize),
}

impl Template {
    /// Parses `text`; every placeholder must name one of `fields`.
    pub fn parse(text: &str, fields: &[String]) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let idx = fields.iter().position(|f| *f == name).ok_or_else(|| {
                        format!("template placeholder {{{name}}} is not in `fields`")
                    })?;
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                    parts.push(Part::Field(idx));
                }
                '}' => return Err("template has an unmatched `}` (write `}}` for a brace)".into()),
                c => literal.push(c),
            }
        }
        parts.push(Part::Literal(literal));
        parts.retain(|p| !matches!(p, Part::Literal(s) if s.is_empty()));
        Ok(Self { parts })
    }

    /// The identity template of a single field.
    pub fn single_field() -> Self {
        Self {
            parts: vec![Part::Field(0)],
        }
    }

    /// Fills the template with `values` (in `fields` order).
    pub fn render(&self, values: &[String]) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Field(i) => out.push_str(values.get(*i).map_or("", String::as_str)),
            }
        }
        out
    }
}

/// Removes GSM8K calculator annotations: `48/2 = <<48/2=24>>24` → `48/2 = 24`.
pub fn strip_calc_annotations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_pair(rest, b'<') {
        let Some(len) = find_pair(&rest[start..], b'>') else {
            break;
        };
        out.push_str(&rest[..start]);
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Byte offset of the first `cc` (an ASCII byte twice) in `text`: a
/// `memchr` for `c`, no substring searcher to set up per call.
fn find_pair(text: &str, c: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(c as char) {
        let at = from + i;
        if bytes.get(at + 1) == Some(&c) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Repairs WikiText's tokenization artifacts: ` @-@ ` → `-`, ` @,@ ` → `,`, ` @.@ ` → `.`.
pub fn wikitext_detokenize(text: &str) -> String {
    text.replace(" @-@ ", "-")
        .replace(" @,@ ", ",")
        .replace(" @.@ ", ".")
}

/// True for a WikiText top-level heading row, ` = Title = `.
fn is_article_heading(line: &str) -> bool {
    let t = line.trim_end_matches('\n');
    t.starts_with(" = ") && t.ends_with(" = ") && !t.starts_with(" = = ") && t.len() > 6
}

/// Rebuilds WikiText articles: rows are lines, an article starts at a ` = Title = ` row.
#[derive(Debug, Default)]
pub struct ArticleAssembler {
    current: String,
}

impl ArticleAssembler {
    /// Adds one row; returns the previous article when this row starts a new one.
    pub fn push(&mut self, row: &str) -> Option<String> {
        let finished = if is_article_heading(row) {
            self.take()
        } else {
            None
        };
        self.current.push_str(row);
        finished
    }

    /// The last article, if any text is pending.
    pub fn finish(mut self) -> Option<String> {
        self.take()
    }

    fn take(&mut self) -> Option<String> {
        let article = std::mem::take(&mut self.current);
        (!article.trim().is_empty()).then_some(article)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_1_template_fills_fields_and_escapes() {
        let fields = vec!["question".to_string(), "answer".to_string()];
        let t =
            Template::parse("Problem: {question}\n\nSolution: {answer} {{x}}", &fields).unwrap();
        assert_eq!(
            t.render(&["2+2?".into(), "4".into()]),
            "Problem: 2+2?\n\nSolution: 4 {x}"
        );
        assert!(
            Template::parse("{nope}", &fields)
                .unwrap_err()
                .contains("nope")
        );
    }

    #[test]
    fn fmt_2_calc_annotations_removed() {
        assert_eq!(
            strip_calc_annotations("48/2 = <<48/2=24>>24 and <<a"),
            "48/2 = 24 and <<a"
        );
    }

    proptest::proptest! {
        // FMT-2: the pair search finds what a substring search finds, on
        // text dense in `<`, `>` and multi-byte characters.
        #[test]
        fn fmt_2_pair_search_is_a_substring_search(text in "[<>aé=]{0,24}") {
            proptest::prop_assert_eq!(find_pair(&text, b'<'), text.find("<<"));
            proptest::prop_assert_eq!(find_pair(&text, b'>'), text.find(">>"));
        }
    }

    #[test]
    fn fmt_3_wikitext_repair() {
        assert_eq!(
            wikitext_detokenize("1 @,@ 000 well @-@ known 3 @.@ 5"),
            "1,000 well-known 3.5"
        );
    }

    #[test]
    fn fmt_4_articles_rebuilt() {
        let mut a = ArticleAssembler::default();
        let rows = [
            " = A = \n",
            " text a\n",
            " = = Sub = = \n",
            " more\n",
            " = B = \n",
            " b\n",
        ];
        let mut out: Vec<String> = rows.iter().filter_map(|r| a.push(r)).collect();
        out.extend(a.finish());
        assert_eq!(
            out,
            [" = A = \n text a\n = = Sub = = \n more\n", " = B = \n b\n"]
        );
    }
}
