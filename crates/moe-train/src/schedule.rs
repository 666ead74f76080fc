//! Learning-rate schedule: linear warmup, then cosine decay to
//! `min_lr_frac × lr` at the last step (TRAIN-2).

/// The learning rate for optimizer step `step` (0-based) of `total`.
pub fn lr_at(step: u64, total: u64, lr: f64, warmup_frac: f64, min_lr_frac: f64) -> f64 {
    let warmup = (warmup_frac * total as f64).round() as u64;
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    let min_lr = lr * min_lr_frac;
    min_lr + (lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}
