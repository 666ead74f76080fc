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

/// Class of each ASCII byte; bytes ≥ 0x80 start a multi-byte char and are
/// classified by [`classify`].
const ASCII_CLASS: [Class; 128] = {
    let mut table = [Class::Other; 128];
    let mut b = 0;
    while b < 128 {
        table[b] = match b as u8 {
            b'a'..=b'z' | b'A'..=b'Z' => Class::Letter,
            b'0'..=b'9' => Class::Number,
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => Class::Space,
            _ => Class::Other,
        };
        b += 1;
    }
    table
};

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
    /// The class of the char starting at byte `at` (a char boundary) and its length.
    #[inline(always)]
    fn class_at(&self, at: usize) -> (Class, usize) {
        let b = self.text.as_bytes()[at];
        if b < 0x80 {
            return (ASCII_CLASS[b as usize], 1);
        }
        let c = self.text[at..].chars().next().unwrap_or('\0');
        (classify(c), c.len_utf8())
    }

    /// End (byte offset) of the run of chars of class `class` starting at `from`.
    #[inline(always)]
    fn run_end(&self, mut from: usize, class: Class) -> usize {
        let bytes = self.text.as_bytes();
        while from < bytes.len() {
            let b = bytes[from];
            if b < 0x80 {
                if ASCII_CLASS[b as usize] != class {
                    break;
                }
                from += 1;
            } else {
                let (c, len) = self.class_at(from);
                if c != class {
                    break;
                }
                from += len;
            }
        }
        from
    }

    /// Length of a contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `from`.
    #[inline(always)]
    fn contraction_len(rest: &[u8]) -> Option<usize> {
        match rest.get(1..3) {
            Some(b"re") | Some(b"ve") | Some(b"ll") => return Some(3),
            _ => {}
        }
        match rest.get(1) {
            Some(b's') | Some(b't') | Some(b'm') | Some(b'd') => Some(2),
            _ => None,
        }
    }

    /// End (byte offset) of the piece starting at `start` (< text length).
    #[inline(always)]
    fn piece_end(&self, start: usize) -> usize {
        let bytes = self.text.as_bytes();
        if bytes[start] == b'\''
            && let Some(n) = Self::contraction_len(&bytes[start..])
        {
            return start + n;
        }
        let (class, first_len) = self.class_at(start);
        if bytes[start] == b' ' && start + 1 < bytes.len() {
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` with the optional space taken.
            let (next, next_len) = self.class_at(start + 1);
            if next != Class::Space {
                return self.run_end(start + 1 + next_len, next);
            }
        }
        match class {
            Class::Letter | Class::Number | Class::Other => self.run_end(start + first_len, class),
            Class::Space => {
                // `\s+(?!\S)` backtracks to leave the last space before a
                // non-space; a single space before a non-space is `\s+`.
                let end = self.run_end(start + first_len, Class::Space);
                if end == bytes.len() {
                    return end;
                }
                let mut last = end - 1;
                while !self.text.is_char_boundary(last) {
                    last -= 1;
                }
                if last > start { last } else { end }
            }
        }
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        if self.pos >= self.text.len() {
            return None;
        }
        let start = self.pos;
        self.pos = self.piece_end(start);
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
