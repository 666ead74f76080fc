//! GPT-2 pre-tokenization without a regex engine.
//!
//! GPT-2 splits text into pieces with the pattern
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! before byte-pair encoding each piece on its own. [`pieces`] walks the text
//! once and yields exactly the matches of that pattern (leftmost-first
//! alternation, greedy repetition, the `(?!\S)` look-ahead resolved by hand),
//! which is several times faster than a backtracking regex (TOK-2).

use unicode_general_category::{GeneralCategory, get_general_category};

/// The character classes the GPT-2 pattern distinguishes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    /// `\p{L}`: any letter.
    Letter,
    /// `\p{N}`: any number.
    Number,
    /// `\s`: Unicode `White_Space`.
    Space,
    /// Everything else (punctuation, symbols, marks, controls …).
    Other,
}

fn classify(c: char) -> Class {
    if c.is_ascii() {
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' => Class::Number,
            ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' => Class::Space,
            _ => Class::Other,
        };
    }
    if c.is_whitespace() {
        return Class::Space;
    }
    use GeneralCategory as G;
    match get_general_category(c) {
        G::UppercaseLetter
        | G::LowercaseLetter
        | G::TitlecaseLetter
        | G::ModifierLetter
        | G::OtherLetter => Class::Letter,
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => Class::Number,
        _ => Class::Other,
    }
}

/// Iterator over the GPT-2 pre-tokenization pieces of a string.
pub struct Pieces<'a> {
    text: &'a str,
    pos: usize,
}

/// Splits `text` into GPT-2 pre-tokenization pieces; concatenated they give
/// back `text` exactly.
pub fn pieces(text: &str) -> Pieces<'_> {
    Pieces { text, pos: 0 }
}

impl<'a> Pieces<'a> {
    /// Byte length of the run of chars of class `class` starting at `from`.
    fn run_len(&self, from: usize, class: Class) -> usize {
        self.text[from..]
            .char_indices()
            .find(|&(_, c)| classify(c) != class)
            .map_or(self.text.len() - from, |(i, _)| i)
    }

    /// Byte length of the run of non-space, non-letter, non-number chars.
    fn other_run_len(&self, from: usize) -> usize {
        self.run_len(from, Class::Other)
    }

    /// Length of a contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `from`.
    fn contraction_len(&self, from: usize) -> Option<usize> {
        let rest = &self.text.as_bytes()[from..];
        if rest.first() != Some(&b'\'') {
            return None;
        }
        match rest.get(1..3) {
            Some(b"re") | Some(b"ve") | Some(b"ll") => return Some(3),
            _ => {}
        }
        match rest.get(1) {
            Some(b's') | Some(b't') | Some(b'm') | Some(b'd') => Some(2),
            _ => None,
        }
    }

    /// Length of the piece starting at `start`.
    fn piece_len(&self, start: usize) -> usize {
        if let Some(n) = self.contraction_len(start) {
            return n;
        }
        let mut chars = self.text[start..].chars();
        let Some(first) = chars.next() else { return 0 };
        let first_len = first.len_utf8();
        let class = classify(first);
        if first == ' ' {
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` with the optional space taken.
            if let Some(next) = chars.next() {
                match classify(next) {
                    Class::Space => {}
                    c => return first_len + self.run_len(start + first_len, c),
                }
            }
        }
        match class {
            Class::Letter | Class::Number => self.run_len(start, class),
            Class::Other => self.other_run_len(start),
            Class::Space => {
                // `\s+(?!\S)` backtracks to leave the last space before a
                // non-space; a single space before a non-space is `\s+`.
                let run = self.run_len(start, Class::Space);
                let end = start + run;
                if end == self.text.len() {
                    return run;
                }
                let last_len = self.text[..end]
                    .chars()
                    .next_back()
                    .map_or(1, char::len_utf8);
                if run > last_len { run - last_len } else { run }
            }
        }
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.pos >= self.text.len() {
            return None;
        }
        let start = self.pos;
        let len = self.piece_len(start).max(1);
        self.pos = start + len;
        Some(&self.text[start..self.pos])
    }
}

#[cfg(test)]
mod tests {
    use super::pieces;

    fn split(s: &str) -> Vec<&str> {
        pieces(s).collect()
    }

    #[test]
    fn tok_2_words_spaces_and_contractions() {
        assert_eq!(split("Hello world"), ["Hello", " world"]);
        assert_eq!(split("it's  ok"), ["it", "'s", " ", " ok"]);
        assert_eq!(split("a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(split("x   \n"), ["x", "   \n"]);
        assert_eq!(
            split("f(x) = 3.14;"),
            ["f", "(", "x", ")", " =", " 3", ".", "14", ";"]
        );
        assert_eq!(split("  ..'s"), [" ", " ..'", "s"]);
    }
}
