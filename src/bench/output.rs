//! What a bench run reports: one [`RunReport`] per measured run, gathered in a
//! [`BenchOutput`] (printed as JSON on stdout) with a human summary for stderr.

use super::idle::IdleReport;
use super::rss::RssSummary;
use super::stats::{Added, Latency};
use super::sweep::SweepReport;
use super::BenchProtocol;
use serde::Serialize;

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// `closed`, `open` or `direct` (open loop against the provider endpoint itself).
    pub mode: &'static str,
    /// Protocol (none for direct HTTP).
    pub protocol: Option<BenchProtocol>,
    /// Tool (or URL for direct).
    pub tool: String,
    /// Connections.
    pub connections: usize,
    /// Open loop: offered calls/s.
    pub offered_rate: Option<f64>,
    /// Calls sent (warm-up included).
    pub sent: u64,
    /// Measured calls answered successfully.
    pub calls: u64,
    /// Measured calls that failed (error replies, broken connections, no reply in time).
    pub errors: u64,
    /// Of `errors`: calls that never got a reply.
    pub lost: u64,
    /// Measured seconds.
    pub seconds: f64,
    /// Successful replies per second in the measured window (achieved rate).
    pub calls_per_sec: f64,
    /// Latency (open loop: from the scheduled send time).
    #[serde(flatten)]
    pub latency: Latency,
    /// Open loop: how late calls actually left the client after their scheduled time.
    pub send_lag: Option<Latency>,
}

impl RunReport {
    /// One line for humans.
    pub fn line(&self) -> String {
        let l = &self.latency;
        let offered = self.offered_rate.map(|r| format!(" offered {r:.0}/s,")).unwrap_or_default();
        let lag = self.send_lag.map(|s| format!(", send lag p99 {} us", s.p99_us)).unwrap_or_default();
        let protocol = match self.protocol {
            Some(BenchProtocol::Mcp) => " mcp",
            Some(BenchProtocol::Legacy) => " legacy",
            None => "",
        };
        format!(
            "{}{protocol} {} x{} conn,{offered} {:.0} calls/s: p50 {} us, p90 {} us, p99 {} us, p99.9 {} us, max {} us, \
             errors {} (lost {}){lag}",
            self.mode,
            self.tool,
            self.connections,
            self.calls_per_sec,
            l.p50_us,
            l.p90_us,
            l.p99_us,
            l.p999_us,
            l.max_us,
            self.errors,
            self.lost
        )
    }
}

/// Everything one `exai bench` invocation measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct BenchOutput {
    /// `closed`, `open`, `sweep`, `soak` or `idle`.
    pub mode: &'static str,
    /// The main run.
    pub run: Option<RunReport>,
    /// The same schedule against the provider endpoint directly.
    pub direct: Option<RunReport>,
    /// `run − direct`, percentile by percentile.
    pub added: Option<Added>,
    /// Sweep steps and frontier.
    pub sweep: Option<SweepReport>,
    /// Idle connections.
    pub idle: Option<IdleReport>,
    /// Server RSS over the run.
    pub rss: Option<RssSummary>,
    /// Soak: RSS grew under 10 % over the second half.
    pub rss_plateau: Option<bool>,
}

impl BenchOutput {
    /// Failed: errors in the main run, or a soak without a plateau.
    pub fn failed(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.errors > 0) || self.rss_plateau == Some(false)
    }

    /// Human summary lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.run.iter().map(RunReport::line));
        out.extend(self.direct.iter().map(RunReport::line));
        if let Some(a) = &self.added {
            out.push(format!("added by exai: p50 {} us, p99 {} us, p99.9 {} us", a.p50_us, a.p99_us, a.p999_us));
        }
        if let Some(s) = &self.sweep {
            out.extend(s.steps.iter().map(RunReport::line));
            for f in &s.frontier {
                out.push(match f.calls_per_sec {
                    Some(c) => format!(
                        "frontier p99 < {} us: {c:.0} calls/s (offered {:.0}/s)",
                        f.p99_limit_us,
                        f.offered_rate.unwrap_or(0.0)
                    ),
                    None => format!("frontier p99 < {} us: no step qualified", f.p99_limit_us),
                });
            }
        }
        if let Some(i) = &self.idle {
            out.push(i.line());
        }
        if let Some(r) = &self.rss {
            let mb = |b: u64| b as f64 / 1e6;
            let series: Vec<String> = r.series.iter().map(|s| format!("{:.1}", mb(s.rss_bytes))).collect();
            out.push(format!("rss MB per second: {}", series.join(" ")));
            out.push(format!(
                "rss: start {:.1} MB, max {:.1} MB, end {:.1} MB, second-half growth {:.2} %",
                mb(r.start_bytes),
                mb(r.max_bytes),
                mb(r.end_bytes),
                r.growth_second_half_pct
            ));
        }
        if let Some(p) = self.rss_plateau {
            out.push(format!("soak: RSS plateau (second-half growth < 10 %): {}", if p { "yes" } else { "NO" }));
        }
        out
    }
}
