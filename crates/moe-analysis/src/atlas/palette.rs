//! Expert colours of the atlas (ATLAS-5): the Okabe–Ito palette for the
//! first 8 experts and Paul Tol's "light" palette, with a bar under the
//! token, for experts 8–15, both designed to stay apart for colour-blind
//! readers; past 16 the colours repeat (the tooltip and legend still name
//! the expert). Each background gets black or white text, whichever
//! contrasts more (WCAG 2 relative luminance).

/// Okabe & Ito (2008), with dark grey in place of black.
const FIRST: [[u8; 3]; 8] = [
    [0xE6, 0x9F, 0x00], // orange
    [0x56, 0xB4, 0xE9], // sky blue
    [0x00, 0x9E, 0x73], // bluish green
    [0xF0, 0xE4, 0x42], // yellow
    [0x00, 0x72, 0xB2], // blue
    [0xD5, 0x5E, 0x00], // vermillion
    [0xCC, 0x79, 0xA7], // reddish purple
    [0x4D, 0x4D, 0x4D], // dark grey
];

/// Paul Tol's "light" scheme (without its pale grey).
const SECOND: [[u8; 3]; 8] = [
    [0x77, 0xAA, 0xDD], // light blue
    [0xEE, 0x88, 0x66], // orange
    [0x44, 0xBB, 0x99], // mint
    [0xEE, 0xDD, 0x88], // light yellow
    [0xAA, 0xAA, 0x00], // olive
    [0xFF, 0xAA, 0xBB], // pink
    [0x99, 0xDD, 0xFF], // light cyan
    [0xBB, 0xCC, 0x33], // pear
];

/// Experts with a colour of their own.
pub const DISTINCT: usize = FIRST.len() + SECOND.len();

/// How one expert's tokens are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swatch {
    /// Background colour.
    pub background: [u8; 3],
    /// Text colour: black or white, whichever contrasts more.
    pub text: [u8; 3],
    /// Whether tokens also get a bar underneath (the second palette).
    pub bar: bool,
}

/// The swatch of `expert`.
pub fn swatch(expert: usize) -> Swatch {
    let i = expert % DISTINCT;
    let (background, bar) = if i < FIRST.len() {
        (FIRST[i], false)
    } else {
        (SECOND[i - FIRST.len()], true)
    };
    Swatch {
        background,
        text: text_on(background),
        bar,
    }
}

/// Black or white, whichever has the higher contrast ratio on `background`.
pub fn text_on(background: [u8; 3]) -> [u8; 3] {
    let (black, white) = ([0, 0, 0], [255, 255, 255]);
    if contrast(black, background) >= contrast(white, background) {
        black
    } else {
        white
    }
}

/// WCAG 2 contrast ratio of two colours, in [1, 21].
pub fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// WCAG 2 relative luminance of an sRGB colour.
pub fn luminance(c: [u8; 3]) -> f64 {
    let lin = |v: u8| {
        let s = v as f64 / 255.0;
        if s <= 0.04045 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
}

/// The heatmap's sequential scale, white → dark blue (as the PNG figures).
pub fn sequential(v: f64) -> [u8; 3] {
    let v = v.clamp(0.0, 1.0);
    let mix = |hi: f64, lo: f64| (hi + (lo - hi) * v).round() as u8;
    [mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0)]
}

/// `#rrggbb`.
pub fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    // ATLAS-5: 16 distinct colours, every text colour readable (WCAG AA, 4.5:1).
    #[test]
    fn atlas_5_distinct_and_readable() {
        let all: Vec<Swatch> = (0..DISTINCT).map(swatch).collect();
        for (i, a) in all.iter().enumerate() {
            assert!(
                contrast(a.text, a.background) >= 4.5,
                "expert {i}: contrast {:.2}",
                contrast(a.text, a.background)
            );
            for b in &all[i + 1..] {
                assert_ne!(a.background, b.background);
            }
        }
        for v in [0.0, 0.3, 0.5, 0.7, 1.0] {
            let c = sequential(v);
            assert!(contrast(text_on(c), c) >= 4.5, "heatmap {v}");
        }
        assert_eq!(swatch(DISTINCT), swatch(0));
        assert_eq!(hex([255, 0, 16]), "#ff0010");
    }
}
