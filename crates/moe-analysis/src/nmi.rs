//! Entropy, mutual information and NMI of contingency tables (ANA-3).
//!
//! A table is `rows × cols` counts (rows = experts, columns = domains or token
//! classes), flat and row-major, as f64 so that expected counts work too.
//! NMI(E; D) = I(E; D) / H(D): 0 when routing ignores the domain, 1 when the
//! expert determines the domain; undefined (reported as 0) when H(D) = 0.

/// Entropy in nats of the distribution proportional to `counts`.
pub fn entropy(counts: impl IntoIterator<Item = f64>) -> f64 {
    let counts: Vec<f64> = counts.into_iter().collect();
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let h = -counts
        .iter()
        .filter(|&&c| c > 0.0)
        .map(|&c| {
            let p = c / total;
            p * p.ln()
        })
        .sum::<f64>();
    // A single class gives -0.0; report it as 0.
    if h > 0.0 { h } else { 0.0 }
}

/// I(rows; cols), H(rows) and H(cols) of a table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MutualInfo {
    /// Mutual information, nats.
    pub mi: f64,
    /// Entropy of the row marginal, nats.
    pub h_rows: f64,
    /// Entropy of the column marginal, nats.
    pub h_cols: f64,
}

impl MutualInfo {
    /// I / H(cols), the share of the column label's entropy the row explains (0 when H(cols) = 0).
    pub fn nmi(&self) -> f64 {
        if self.h_cols <= 1e-12 {
            0.0
        } else {
            (self.mi / self.h_cols).clamp(0.0, 1.0)
        }
    }
}

/// Mutual information of a flat row-major `n_rows × n_cols` table.
pub fn mutual_information(table: &[f64], n_rows: usize, n_cols: usize) -> MutualInfo {
    debug_assert_eq!(table.len(), n_rows * n_cols);
    let total: f64 = table.iter().sum();
    if total <= 0.0 {
        return MutualInfo {
            mi: 0.0,
            h_rows: 0.0,
            h_cols: 0.0,
        };
    }
    let rows: Vec<f64> = table
        .chunks(n_cols.max(1))
        .map(|r| r.iter().sum())
        .collect();
    let cols: Vec<f64> = (0..n_cols)
        .map(|c| (0..n_rows).map(|r| table[r * n_cols + c]).sum())
        .collect();
    let mut mi = 0.0;
    for r in 0..n_rows {
        for c in 0..n_cols {
            let n = table[r * n_cols + c];
            if n > 0.0 {
                mi += n / total * (n * total / (rows[r] * cols[c])).ln();
            }
        }
    }
    MutualInfo {
        mi: mi.max(0.0),
        h_rows: entropy(rows),
        h_cols: entropy(cols),
    }
}

/// Mutual information of a `[row][col]` count matrix.
pub fn mutual_information_of(counts: &[Vec<u64>]) -> MutualInfo {
    let n_cols = counts.first().map_or(0, Vec::len);
    let flat: Vec<f64> = counts.iter().flatten().map(|&c| c as f64).collect();
    mutual_information(&flat, counts.len(), n_cols)
}

/// Row shares (each row sums to 1, or is all 0) of a `[row][col]` matrix.
pub fn row_shares(counts: &[Vec<u64>]) -> Vec<Vec<f64>> {
    counts
        .iter()
        .map(|row| {
            let total: u64 = row.iter().sum();
            row.iter()
                .map(|&c| {
                    if total == 0 {
                        0.0
                    } else {
                        c as f64 / total as f64
                    }
                })
                .collect()
        })
        .collect()
}

/// The transpose of a `[row][col]` matrix.
pub fn transpose(counts: &[Vec<u64>]) -> Vec<Vec<u64>> {
    let n_cols = counts.first().map_or(0, Vec::len);
    (0..n_cols)
        .map(|c| counts.iter().map(|row| row[c]).collect())
        .collect()
}
