//! Statistics across seeds (ANA-21): the spread of a figure over the seeds
//! of one configuration, and paired 95% intervals of the difference between
//! two configurations run with the same seeds (Student's t over the
//! per-seed differences). A difference whose interval covers 0 is
//! unresolved.

use serde::{Deserialize, Serialize};

/// Mean, sample standard deviation and range of a figure over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Values.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub sd: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// A mean with its two-sided 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Values (seeds).
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

impl Interval {
    /// Whether the interval lies wholly above or below 0.
    pub fn resolved(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The spread of `values`; `None` when empty.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let sd = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Some(Spread {
        n,
        mean,
        sd,
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// The 95% t-interval of the mean of `values`; `None` with fewer than 2.
pub fn t_interval(values: &[f64]) -> Option<Interval> {
    let s = spread(values).filter(|s| s.n >= 2)?;
    let half = t_975(s.n - 1) * s.sd / (s.n as f64).sqrt();
    Some(Interval {
        n: s.n,
        mean: s.mean,
        low: s.mean - half,
        high: s.mean + half,
    })
}

/// `b − a` for every seed both have, in seed order.
pub fn paired_differences(a: &[(u64, f64)], b: &[(u64, f64)]) -> Vec<f64> {
    let mut out: Vec<(u64, f64)> = a
        .iter()
        .filter_map(|(seed, x)| {
            b.iter()
                .find(|(s, _)| s == seed)
                .map(|(_, y)| (*seed, y - x))
        })
        .collect();
    out.sort_by_key(|(s, _)| *s);
    out.into_iter().map(|(_, d)| d).collect()
}

/// The 97.5th percentile of Student's t with `df` degrees of freedom: the
/// table for df ≤ 30, above it the Cornish-Fisher expansion around the
/// normal quantile (within 1e-4 of the exact value for df > 30).
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let (z, n) = (1.959_964_f64, df as f64);
            z + (z.powi(3) + z) / (4.0 * n)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        }
    }
}
