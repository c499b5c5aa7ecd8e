//! What a load saw, counted and printed the way siege prints it, so the README can show the
//! figures beside the origin project's (siege: 100 % during a rolling update, 70.45 % without).

use std::{collections::HashMap, time::Duration};

#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    response_time: Duration,
    longest: Duration,
    /// Failures by kind (status or error, and the request), for the log.
    pub failures: HashMap<String, u64>,
}

impl Tally {
    pub fn record(&mut self, took: Duration, outcome: Result<(), String>) {
        self.response_time += took;
        self.longest = self.longest.max(took);
        match outcome {
            Ok(()) => self.ok += 1,
            Err(kind) => {
                self.failed += 1;
                *self.failures.entry(kind).or_default() += 1;
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.ok + self.failed
    }

    pub fn availability(&self) -> f64 {
        100.0 * self.ok as f64 / self.total().max(1) as f64
    }

    pub fn rate(&self, elapsed: Duration) -> f64 {
        self.total() as f64 / elapsed.as_secs_f64()
    }

    pub fn print(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        println!("Transactions:\t\t{:>10} hits", self.ok);
        println!("Availability:\t\t{:>10.2} %", self.availability());
        println!("Elapsed time:\t\t{secs:>10.2} secs");
        println!(
            "Response time:\t\t{:>10.3} secs",
            self.response_time.as_secs_f64() / self.total().max(1) as f64
        );
        println!("Transaction rate:\t{:>10.2} trans/sec", self.rate(elapsed));
        println!("Successful transactions:{:>10}", self.ok);
        println!("Failed transactions:\t{:>10}", self.failed);
        println!("Longest transaction:\t{:>10.2}", self.longest.as_secs_f64());
        if !self.failures.is_empty() {
            println!("Failures by kind:\t{:?}", self.failures);
        }
    }
}
