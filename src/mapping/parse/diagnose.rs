//! The `[diagnose]` table: the detector's thresholds.

use super::values::*;
use super::*;

const DIAGNOSE_KEYS: &[&str] = &[
    "enabled",
    "history_steps",
    "exploding_factor",
    "exploding_steps",
    "vanishing_ratio",
    "vanishing_steps",
    "plateau_steps",
    "plateau_tolerance",
    "plateau_level",
    "oscillation_steps",
    "oscillation_correlation",
    "oscillation_factor",
    "dead_steps",
    "loss_spike_z",
    "loss_spike_factor",
    "stall_seconds",
    "rearm_steps",
];

impl Cx<'_> {
    /// The `[diagnose]` table: the detector's thresholds over their defaults.
    pub(super) fn diagnose(&mut self, v: &Val<'_>, path: &str) -> Thresholds {
        let mut cfg = Thresholds::default();
        let Some(t) = self.table(v, path) else {
            return cfg;
        };
        self.keys(t, path, DIAGNOSE_KEYS, &[], "`[diagnose]`");
        if let Some(b) = get(t, "enabled").and_then(|b| self.boolean(b, &join(path, "enabled"))) {
            cfg.enabled = b;
        }
        let max = crate::diagnose::MAX_WINDOW as i64;
        let steps: [(&str, i64, &mut u32); 7] = [
            ("history_steps", 1, &mut cfg.history_steps),
            ("exploding_steps", 1, &mut cfg.exploding_steps),
            ("vanishing_steps", 1, &mut cfg.vanishing_steps),
            ("plateau_steps", 3, &mut cfg.plateau_steps),
            ("oscillation_steps", 4, &mut cfg.oscillation_steps),
            ("dead_steps", 1, &mut cfg.dead_steps),
            ("rearm_steps", 1, &mut cfg.rearm_steps),
        ];
        for (key, lo, field) in steps {
            if let Some(n) = get(t, key).and_then(|n| {
                self.integer(
                    n,
                    &join(path, key),
                    lo,
                    max,
                    &format!("a number of steps {lo}-{max}"),
                )
            }) {
                *field = n as u32;
            }
        }
        let numbers: [(&str, f64, f64, &str, &mut f64); 9] = [
            (
                "exploding_factor",
                1.0,
                1e12,
                "a growth factor of at least 1, e.g. 10",
                &mut cfg.exploding_factor,
            ),
            (
                "vanishing_ratio",
                f64::MIN_POSITIVE,
                1.0,
                "a ratio above 0 and at most 1, e.g. 0.01",
                &mut cfg.vanishing_ratio,
            ),
            (
                "plateau_tolerance",
                0.0,
                1.0,
                "a fraction 0-1, e.g. 0.01",
                &mut cfg.plateau_tolerance,
            ),
            (
                "plateau_level",
                0.0,
                1e6,
                "a fraction of the starting loss, e.g. 0.5",
                &mut cfg.plateau_level,
            ),
            (
                "oscillation_correlation",
                0.0,
                1.0,
                "a correlation 0-1, e.g. 0.6",
                &mut cfg.oscillation_correlation,
            ),
            (
                "loss_spike_z",
                0.0,
                1e6,
                "a number of robust standard deviations, e.g. 6",
                &mut cfg.loss_spike_z,
            ),
            (
                "loss_spike_factor",
                1.0,
                1e12,
                "a factor of at least 1, e.g. 2",
                &mut cfg.loss_spike_factor,
            ),
            (
                "stall_seconds",
                0.001,
                86_400.0,
                "seconds 0.001-86400, e.g. 10",
                &mut cfg.stall_seconds,
            ),
            (
                "oscillation_factor",
                1.0,
                1e6,
                "a change factor of at least 1, e.g. 2",
                &mut cfg.oscillation_factor,
            ),
        ];
        for (key, lo, hi, expected, field) in numbers {
            if let Some(n) =
                get(t, key).and_then(|n| self.number(n, &join(path, key), lo, hi, expected))
            {
                *field = n;
            }
        }
        cfg
    }
}
