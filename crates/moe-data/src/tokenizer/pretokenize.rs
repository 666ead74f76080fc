//! GPT-2 pre-tokenization without a regex engine.
//!
//! GPT-2 splits text into pieces with the pattern
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! before byte-pair encoding each piece on its own. [`pieces`] walks the text
//! once and yields exactly the matches of that pattern (leftmost-first
//! alternation, greedy repetition, the `(?!\S)` look-ahead resolved by hand),
//! which is several times faster than a backtracking regex (TOK-2).
//!
//! Runs of ASCII letters and whitespace are measured eight bytes at a time:
//! each byte of a `u64` word is classified with carry-free byte arithmetic
//! (SWAR), so a word of letters costs a handful of integer operations instead
//! of eight table lookups and branches (runs of digits and punctuation are
//! mostly a byte or two, and stay byte by byte). It needs no CPU feature, so it runs the same on every
//! target; [`pieces_bytewise`], the byte-at-a-time walk, is kept as its
//! reference and splits identically (TOK-6).

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

/// Word-at-a-time byte classification (SWAR) for the ASCII runs.
mod swar {
    use super::Class;

    const ONES: u64 = 0x0101_0101_0101_0101;
    const LO7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    /// The high bit of every byte.
    pub const HIGH: u64 = 0x8080_8080_8080_8080;

    #[inline(always)]
    const fn splat(b: u8) -> u64 {
        ONES * b as u64
    }

    /// High bit of each byte of `x7` (bytes < 0x80) that is ≥ `lo` (≤ 0x80):
    /// `x + (0x80 - lo)` stays below 0x100, so no carry crosses bytes.
    #[inline(always)]
    fn at_least(x7: u64, lo: u8) -> u64 {
        (x7 + splat(0x80 - lo)) & HIGH
    }

    /// High bit of each byte of `x` that is zero (exact).
    #[inline(always)]
    fn zero(x: u64) -> u64 {
        !(((x & LO7) + LO7) | x) & HIGH
    }

    /// High bit of each byte of `word` that is ASCII of class `class`.
    #[inline(always)]
    pub fn class_mask(word: u64, class: Class) -> u64 {
        let ascii = !word & HIGH;
        let x7 = word & LO7;
        let letter = || {
            let lower = x7 | splat(0x20);
            at_least(lower, b'a') & !at_least(lower, b'z' + 1)
        };
        let number = || at_least(x7, b'0') & !at_least(x7, b'9' + 1);
        let space = || zero(word ^ splat(b' ')) | (at_least(x7, 0x09) & !at_least(x7, 0x0E));
        ascii
            & match class {
                Class::Letter => letter(),
                Class::Number => number(),
                Class::Space => space(),
                Class::Other => !(letter() | number() | space()),
            }
    }

    /// The eight bytes of `bytes` from `at`, little-endian, if there are eight.
    #[inline(always)]
    pub fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
        let chunk: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(chunk))
    }
}

/// Iterator over the GPT-2 pre-tokenization pieces of a string. `SWAR`:
/// measure ASCII runs a word at a time ([`pieces`]) or byte by byte
/// ([`pieces_bytewise`]); the pieces are the same.
pub struct Pieces<'a, const SWAR: bool = true> {
    text: &'a str,
    pos: usize,
}

/// Splits `text` into GPT-2 pre-tokenization pieces; concatenated they give
/// back `text` exactly.
pub fn pieces(text: &str) -> Pieces<'_> {
    Pieces { text, pos: 0 }
}

/// [`pieces`] classifying one byte at a time: the reference the word-at-a-time
/// walk is tested against (TOK-6).
pub fn pieces_bytewise(text: &str) -> Pieces<'_, false> {
    Pieces { text, pos: 0 }
}

impl<'a, const SWAR: bool> Pieces<'a, SWAR> {
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
    fn run_end(&self, from: usize, class: Class) -> usize {
        // Runs of digits and punctuation are mostly a byte or two: a word
        // at a time pays only for letters and whitespace.
        if SWAR && matches!(class, Class::Letter | Class::Space) {
            self.run_end_swar(from, class)
        } else {
            self.run_end_bytewise(from, class)
        }
    }

    /// [`Self::run_end`] eight ASCII bytes at a time; a non-ASCII char, or
    /// the last few bytes, one at a time.
    #[inline(always)]
    fn run_end_swar(&self, mut from: usize, class: Class) -> usize {
        let bytes = self.text.as_bytes();
        // A run that ends at once (a one-letter word): one lookup.
        if let Some(&b) = bytes.get(from)
            && b < 0x80
            && ASCII_CLASS[b as usize] != class
        {
            return from;
        }
        loop {
            while let Some(word) = swar::word_at(bytes, from) {
                let outside = !swar::class_mask(word, class) & swar::HIGH;
                if outside == 0 {
                    from += 8;
                    continue;
                }
                from += (outside.trailing_zeros() / 8) as usize;
                if bytes[from] < 0x80 {
                    return from;
                }
                break;
            }
            match bytes.get(from) {
                None => return from,
                Some(&b) if b < 0x80 => {
                    if ASCII_CLASS[b as usize] != class {
                        return from;
                    }
                    from += 1;
                }
                Some(_) => {
                    let (c, len) = self.class_at(from);
                    if c != class {
                        return from;
                    }
                    from += len;
                }
            }
        }
    }

    /// [`Self::run_end`] one byte (or non-ASCII char) at a time.
    #[inline(always)]
    fn run_end_bytewise(&self, mut from: usize, class: Class) -> usize {
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

impl<'a, const SWAR: bool> Iterator for Pieces<'a, SWAR> {
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
    use super::{pieces, pieces_bytewise};

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

    fn text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let atom = prop_oneof![
            4 => proptest::sample::select(vec![
                "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'", "'S", "'x",
                " ", "  ", "   ", "\t", "\n", "\r\n", "\x0b", "\x0c", " \n",
                "\u{a0}", "\u{85}", "\u{2003}", "\u{3000}",
                "abc", "Hello", "ZZ", "x", "0", "42", "3.14", "_", "()", "{}", ";",
                "é", "ß", "日本", "٣", "½", "Ⅻ", "\u{301}", "🙂", "\0", "\x1f", "\x7f",
            ]).prop_map(str::to_string),
            2 => "[ -~]{0,24}",
            1 => any::<String>(),
            1 => "[a-z0-9 ]{8,40}",
        ];
        proptest::collection::vec(atom, 0..24).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        // Checks: TOK-6
        #[test]
        fn tok_6_word_at_a_time_splits_like_byte_at_a_time(text in text()) {
            let fast: Vec<&str> = pieces(&text).collect();
            let slow: Vec<&str> = pieces_bytewise(&text).collect();
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    // Checks: TOK-6
    #[test]
    fn tok_6_word_classes_match_the_byte_table() {
        use super::{ASCII_CLASS, Class, swar};
        for class in [Class::Letter, Class::Number, Class::Space, Class::Other] {
            for b in 0..=255u8 {
                for at in 0..8 {
                    let mut bytes = [b'a', 0x80, b' ', b'7', b'-', 0xFF, b'\t', b'Z'];
                    bytes[at] = b;
                    let mask = swar::class_mask(u64::from_le_bytes(bytes), class);
                    for (k, &c) in bytes.iter().enumerate() {
                        let want = c < 0x80 && ASCII_CLASS[c as usize] == class;
                        assert_eq!(
                            mask >> (8 * k + 7) & 1 == 1,
                            want,
                            "{class:?} {bytes:?} {k}"
                        );
                    }
                }
            }
        }
    }

    // Checks: TOK-6
    #[test]
    fn tok_6_every_byte_pair_splits_alike() {
        // Each ASCII byte in each position of a word, next to each other byte.
        for a in 0u8..128 {
            for b in 0u8..128 {
                for pad in 0..9 {
                    let mut text = "x".repeat(pad);
                    text.push(a as char);
                    text.push(b as char);
                    text.push_str("yy 1 é");
                    let fast: Vec<&str> = pieces(&text).collect();
                    let slow: Vec<&str> = pieces_bytewise(&text).collect();
                    assert_eq!(fast, slow, "{text:?}");
                }
            }
        }
    }
}
