//! Which source the samples of a poll come from: Prometheus, or the
//! simulation while Prometheus is unreachable. Pure state: fed the outcome
//! of each poll, it says which source serves it and what to tell the user.
//!
//! Rules: unreachable on the very first poll, or for
//! `simulation_after_failures` polls in a row, switches to the simulation
//! (every point then says `source=simulation`); a failed poll before that
//! serves nothing. While simulating, each poll still asks Prometheus once and
//! switches back as soon as it answers. A query Prometheus refuses on the
//! first poll is a configuration error; later it is logged and the poll
//! serves nothing.

use serde::Serialize;

/// Where samples come from right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Prometheus answered the last poll.
    Prometheus,
    /// The simulated source.
    Simulation,
}

impl SourceKind {
    /// `prometheus` or `simulation`, as written to points and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Prometheus => "prometheus",
            SourceKind::Simulation => "simulation",
        }
    }
}

/// What one poll of Prometheus gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It answered (with this many series).
    Answered(usize),
    /// No answer (connection refused, timeout, 5xx).
    Unreachable(String),
    /// It answered with an error (bad PromQL, …).
    Refused(String),
}

/// What to do with this poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Use Prometheus' samples.
    Real,
    /// Use the simulation.
    Simulate,
    /// Use nothing this poll.
    Skip,
    /// Stop: the query is wrong (first poll only).
    Fatal(String),
}

/// Something the user should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Switched to the simulation.
    ToSimulation(String),
    /// Prometheus answers again.
    BackToPrometheus,
    /// A poll failed, `n` of `of` before switching.
    Failed {
        /// Failures in a row.
        n: u32,
        /// Failures that switch.
        of: u32,
        /// Why.
        reason: String,
    },
    /// Prometheus refused the query (after the first poll).
    Refused(String),
    /// The query returned no series.
    Empty,
}

/// The failover state.
#[derive(Debug, Clone)]
pub struct Failover {
    source: SourceKind,
    failures: u32,
    first: bool,
    after: u32,
    switches: u64,
}

impl Failover {
    /// Starts on Prometheus; `after` failed polls in a row switch.
    pub fn new(after: u32) -> Failover {
        Failover {
            source: SourceKind::Prometheus,
            failures: 0,
            first: true,
            after: after.max(1),
            switches: 0,
        }
    }

    /// The current source.
    pub fn source(&self) -> SourceKind {
        self.source
    }

    /// Switches so far (not counting a simulation from the first poll).
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Whether to ask with one quick attempt (while simulating) rather
    /// than with retries.
    pub fn probing(&self) -> bool {
        self.source == SourceKind::Simulation
    }

    /// Feeds a poll's outcome.
    pub fn on_poll(&mut self, outcome: Outcome) -> (Decision, Option<Event>) {
        let first = std::mem::replace(&mut self.first, false);
        match outcome {
            Outcome::Answered(n) => {
                self.failures = 0;
                let event = if self.source == SourceKind::Simulation {
                    self.switches += 1;
                    Some(Event::BackToPrometheus)
                } else if n == 0 {
                    Some(Event::Empty)
                } else {
                    None
                };
                self.source = SourceKind::Prometheus;
                (Decision::Real, event)
            }
            Outcome::Unreachable(reason) => {
                self.failures += 1;
                match self.source {
                    SourceKind::Simulation => (Decision::Simulate, None),
                    SourceKind::Prometheus if first || self.failures >= self.after => {
                        self.source = SourceKind::Simulation;
                        self.switches += u64::from(!first);
                        (Decision::Simulate, Some(Event::ToSimulation(reason)))
                    }
                    SourceKind::Prometheus => (
                        Decision::Skip,
                        Some(Event::Failed {
                            n: self.failures,
                            of: self.after,
                            reason,
                        }),
                    ),
                }
            }
            Outcome::Refused(message) if first => (Decision::Fatal(message), None),
            Outcome::Refused(message) => {
                let d = if self.source == SourceKind::Simulation {
                    Decision::Simulate
                } else {
                    Decision::Skip
                };
                (d, Some(Event::Refused(message)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Outcome {
        Outcome::Unreachable("refused".into())
    }

    #[test]
    fn unreachable_at_start_simulates_at_once_and_comes_back() {
        let mut f = Failover::new(3);
        let (d, e) = f.on_poll(down());
        assert_eq!(d, Decision::Simulate);
        assert!(matches!(e, Some(Event::ToSimulation(_))));
        assert!(f.probing());
        assert_eq!(f.on_poll(down()), (Decision::Simulate, None));
        assert_eq!(
            f.on_poll(Outcome::Answered(2)),
            (Decision::Real, Some(Event::BackToPrometheus))
        );
        assert_eq!(f.source(), SourceKind::Prometheus);
        assert_eq!(f.switches(), 1);
    }

    #[test]
    fn a_later_outage_switches_after_n_failures_in_a_row() {
        let mut f = Failover::new(3);
        assert_eq!(f.on_poll(Outcome::Answered(1)), (Decision::Real, None));
        let (d, e) = f.on_poll(down());
        assert_eq!(d, Decision::Skip);
        assert!(matches!(e, Some(Event::Failed { n: 1, of: 3, .. })));
        // An answer in between resets the count.
        f.on_poll(Outcome::Answered(1));
        assert_eq!(f.on_poll(down()).0, Decision::Skip);
        assert_eq!(f.on_poll(down()).0, Decision::Skip);
        let (d, e) = f.on_poll(down());
        assert_eq!(d, Decision::Simulate);
        assert!(matches!(e, Some(Event::ToSimulation(_))));
        assert_eq!(f.switches(), 1);
    }

    #[test]
    fn a_refused_query_is_fatal_only_on_the_first_poll() {
        let mut f = Failover::new(3);
        assert_eq!(
            f.on_poll(Outcome::Refused("bad_data".into())).0,
            Decision::Fatal("bad_data".into())
        );
        let mut f = Failover::new(3);
        f.on_poll(Outcome::Answered(0));
        let (d, e) = f.on_poll(Outcome::Refused("timeout".into()));
        assert_eq!(d, Decision::Skip);
        assert_eq!(e, Some(Event::Refused("timeout".into())));
    }

    #[test]
    fn an_empty_answer_is_reported() {
        let mut f = Failover::new(3);
        assert_eq!(
            f.on_poll(Outcome::Answered(0)),
            (Decision::Real, Some(Event::Empty))
        );
    }
}
