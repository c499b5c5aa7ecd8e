//! `CardSimulator`: a stand-in for the card processor, behind the [`CardProvider`] port.
//!
//! studycafe runs without a real card processor, so demos and tests drive every path through
//! the payment token. A real processor's adapter (HTTP to the acquirer, with its own
//! credentials and timeouts) implements the same port; nothing else changes.
//!
//! | token            | charge                                                        |
//! |------------------|---------------------------------------------------------------|
//! | `tok_approve`    | approved                                                      |
//! | `tok_decline`    | declined: "card declined"                                     |
//! | `tok_slow_<ms>`  | approved after `<ms>` milliseconds (0..=120000); else declined "invalid payment token" |
//! | `tok_error`      | no answer (provider unavailable: "simulated provider outage") |
//! | anything else    | declined: "unknown payment token"                             |
//!
//! Like a real processor it is idempotent by key: it remembers each key's first answer (in
//! memory) and gives it again, never charging or refunding twice. Concurrent calls with one
//! key wait for the first one's answer. An unanswered call (outage) is not remembered: the
//! next call with that key is a first call. Refunds always succeed unless there is an outage;
//! a refund of a charge made with `tok_slow_<ms>` is slow too (answered after `<ms>`), so
//! demos and tests can watch a refund in flight.
//!
//! Metrics: `payment_simulator_charges_total` and `payment_simulator_refunds_total` count
//! real, first-time charges (approved) and refunds.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::OnceCell;

use crate::domain::{
    Money, PaymentToken,
    ports::{CardProvider, Charge, ProviderUnavailable},
};

/// The longest `tok_slow_<ms>` delay.
pub const MAX_SLOW_MS: u64 = 120_000;

/// What a token asks the simulator to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    Approve { after: Duration },
    Decline { reason: &'static str },
    Outage,
}

impl Behaviour {
    pub fn of(token: &str) -> Self {
        match token {
            "tok_approve" => Self::Approve {
                after: Duration::ZERO,
            },
            "tok_decline" => Self::Decline {
                reason: "card declined",
            },
            "tok_error" => Self::Outage,
            _ => match token.strip_prefix("tok_slow_") {
                Some(digits) => match digits.parse::<u64>() {
                    // Digits only: `parse` would also take a leading '+'.
                    Ok(ms) if ms <= MAX_SLOW_MS && digits.bytes().all(|b| b.is_ascii_digit()) => {
                        Self::Approve {
                            after: Duration::from_millis(ms),
                        }
                    }
                    _ => Self::Decline {
                        reason: "invalid payment token",
                    },
                },
                None => Self::Decline {
                    reason: "unknown payment token",
                },
            },
        }
    }
}

type Answers<T> = Mutex<HashMap<String, Arc<OnceCell<T>>>>;

#[derive(Debug, Default)]
struct State {
    charges: Answers<Charge>,
    refunds: Answers<String>,
    charged: AtomicU64,
    refunded: AtomicU64,
    charge_calls: AtomicU64,
    refund_calls: AtomicU64,
    /// How long a refund of each slow charge (by its reference) takes.
    refund_delays: Mutex<HashMap<String, Duration>>,
}

/// The built-in card processor stand-in. Cheap to clone; clones share their memory.
#[derive(Debug, Clone, Default)]
pub struct CardSimulator {
    state: Arc<State>,
    outage: Arc<AtomicBool>,
}

impl CardSimulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// A simulator that answers nothing while `outage` is on (tests switch it to play a
    /// processor outage; token semantics are unchanged otherwise).
    pub fn with_outage(outage: Arc<AtomicBool>) -> Self {
        Self {
            state: Arc::default(),
            outage,
        }
    }

    /// Real (first-time, approved) charges made so far by this simulator.
    pub fn charges_made(&self) -> u64 {
        self.state.charged.load(Ordering::SeqCst)
    }

    /// Charge calls answered so far, repeats included: how often the payment service asked,
    /// which its own guarantees keep at one per payment (barring outages).
    pub fn charge_calls(&self) -> u64 {
        self.state.charge_calls.load(Ordering::SeqCst)
    }

    /// Refund calls answered so far, repeats included: how often the payment service asked,
    /// which the refund claim keeps at one per refund across replicas (barring outages).
    pub fn refund_calls(&self) -> u64 {
        self.state.refund_calls.load(Ordering::SeqCst)
    }

    /// Real (first-time) refunds made so far by this simulator.
    pub fn refunds_made(&self) -> u64 {
        self.state.refunded.load(Ordering::SeqCst)
    }

    fn check_outage(&self) -> Result<(), ProviderUnavailable> {
        if self.outage.load(Ordering::SeqCst) {
            Err(ProviderUnavailable("simulated provider outage".into()))
        } else {
            Ok(())
        }
    }
}

/// The simulator's maps stay usable after a panic elsewhere (they hold plain answers).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn cell<T>(answers: &Answers<T>, key: &str) -> Arc<OnceCell<T>> {
    lock(answers).entry(key.to_owned()).or_default().clone()
}

impl CardProvider for CardSimulator {
    async fn charge(
        &self,
        idempotency_key: &str,
        amount: Money,
        token: &PaymentToken,
    ) -> Result<Charge, ProviderUnavailable> {
        self.check_outage()?;
        self.state.charge_calls.fetch_add(1, Ordering::SeqCst);
        let behaviour = Behaviour::of(token.expose());
        let answer = cell(&self.state.charges, idempotency_key);
        let charge = answer
            .get_or_try_init(|| async {
                match behaviour {
                    Behaviour::Outage => {
                        Err(ProviderUnavailable("simulated provider outage".into()))
                    }
                    Behaviour::Decline { reason } => Ok(Charge::Declined {
                        reason: reason.to_owned(),
                    }),
                    Behaviour::Approve { after } => {
                        tokio::time::sleep(after).await;
                        self.state.charged.fetch_add(1, Ordering::SeqCst);
                        metrics::counter!("payment_simulator_charges_total").increment(1);
                        let provider_ref = format!("sim_ch_{}", uuid::Uuid::now_v7().simple());
                        if !after.is_zero() {
                            lock(&self.state.refund_delays).insert(provider_ref.clone(), after);
                        }
                        tracing::info!(key = idempotency_key, %amount, %provider_ref, "simulator: card charged");
                        Ok(Charge::Approved { provider_ref })
                    }
                }
            })
            .await?;
        Ok(charge.clone())
    }

    async fn refund(
        &self,
        idempotency_key: &str,
        provider_ref: &str,
        amount: Money,
    ) -> Result<String, ProviderUnavailable> {
        self.check_outage()?;
        self.state.refund_calls.fetch_add(1, Ordering::SeqCst);
        let delay = lock(&self.state.refund_delays).get(provider_ref).copied();
        let answer = cell(&self.state.refunds, idempotency_key);
        let refund_ref = answer
            .get_or_init(|| async {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                self.state.refunded.fetch_add(1, Ordering::SeqCst);
                metrics::counter!("payment_simulator_refunds_total").increment(1);
                let refund_ref = format!("sim_rf_{}", uuid::Uuid::now_v7().simple());
                tracing::info!(key = idempotency_key, charge = provider_ref, %amount, %refund_ref, "simulator: refunded");
                refund_ref
            })
            .await;
        Ok(refund_ref.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(raw: &str) -> PaymentToken {
        PaymentToken::parse(raw).unwrap()
    }

    #[test]
    fn tokens_drive_the_behaviour() {
        let approve = Behaviour::Approve {
            after: Duration::ZERO,
        };
        let invalid = Behaviour::Decline {
            reason: "invalid payment token",
        };
        assert_eq!(Behaviour::of("tok_approve"), approve);
        assert_eq!(
            Behaviour::of("tok_decline"),
            Behaviour::Decline {
                reason: "card declined"
            }
        );
        assert_eq!(Behaviour::of("tok_error"), Behaviour::Outage);
        assert_eq!(Behaviour::of("tok_slow_0"), approve);
        assert_eq!(
            Behaviour::of("tok_slow_120000"),
            Behaviour::Approve {
                after: Duration::from_secs(120)
            }
        );
        for bad in [
            "tok_slow_120001",
            "tok_slow_",
            "tok_slow_x",
            "tok_slow_+5",
            "tok_slow_-1",
        ] {
            assert_eq!(Behaviour::of(bad), invalid, "{bad}");
        }
        assert_eq!(
            Behaviour::of("tok_whatever"),
            Behaviour::Decline {
                reason: "unknown payment token"
            }
        );
    }

    #[tokio::test]
    async fn idempotent_by_key() {
        let sim = CardSimulator::new();
        let amount = Money::krw(4000).unwrap();
        let first = sim
            .charge("k1", amount, &token("tok_approve"))
            .await
            .unwrap();
        // The same key answers the first result, whatever the token says now.
        let again = sim
            .charge("k1", amount, &token("tok_decline"))
            .await
            .unwrap();
        assert_eq!(first, again);
        assert_eq!(sim.charges_made(), 1);
        let declined = sim
            .charge("k2", amount, &token("tok_decline"))
            .await
            .unwrap();
        assert!(matches!(declined, Charge::Declined { .. }));
        assert_eq!(sim.charges_made(), 1);

        let Charge::Approved { provider_ref } = first else {
            panic!("approved")
        };
        let r1 = sim.refund("p1", &provider_ref, amount).await.unwrap();
        let r2 = sim.refund("p1", &provider_ref, amount).await.unwrap();
        assert_eq!(r1, r2);
        assert_eq!(sim.refunds_made(), 1);
        assert_eq!(sim.refund_calls(), 2, "repeats are calls too");
    }

    #[tokio::test]
    async fn a_slow_charge_is_refunded_slowly() {
        let sim = CardSimulator::new();
        let amount = Money::krw(4000).unwrap();
        let Charge::Approved { provider_ref } = sim
            .charge("k", amount, &token("tok_slow_200"))
            .await
            .unwrap()
        else {
            panic!("approved")
        };
        let started = tokio::time::Instant::now();
        sim.refund("p", &provider_ref, amount).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(sim.refunds_made(), 1);
    }

    #[tokio::test]
    async fn outages_are_not_remembered() {
        let outage = Arc::new(AtomicBool::new(true));
        let sim = CardSimulator::with_outage(outage.clone());
        let amount = Money::krw(4000).unwrap();
        assert!(
            sim.charge("k", amount, &token("tok_approve"))
                .await
                .is_err()
        );
        assert!(sim.refund("r", "ch", amount).await.is_err());
        outage.store(false, Ordering::SeqCst);
        assert!(sim.charge("k", amount, &token("tok_error")).await.is_err());
        assert!(matches!(
            sim.charge("k", amount, &token("tok_approve")).await,
            Ok(Charge::Approved { .. })
        ));
        assert_eq!(sim.charges_made(), 1);
    }
}
