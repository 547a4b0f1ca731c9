//! Percentiles of timing samples (the benchmarks, the soak).

use std::time::Duration;

/// Samples in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    /// Adds a duration.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1e6);
    }

    /// Nearest-rank percentile (0-100), in microseconds.
    pub fn pct(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        v[rank.min(v.len()) - 1]
    }

    /// Median.
    pub fn p50(&self) -> f64 {
        self.pct(50.0)
    }

    /// 90th percentile.
    pub fn p90(&self) -> f64 {
        self.pct(90.0)
    }

    /// Element-wise difference (self - other) of paired samples.
    pub fn minus(&self, other: &Samples) -> Samples {
        Samples(self.0.iter().zip(&other.0).map(|(a, b)| a - b).collect())
    }
}

/// Microseconds as milliseconds with two decimals.
pub fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}
