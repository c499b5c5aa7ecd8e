//! librdkafka's own logging, made fit for operators.
//!
//! By default every client logs each failed connection attempt at ERROR, about once a second
//! while a broker is away, and then reports the same as a "global error". A broker outage is
//! an expected condition here (the outbox holds the events, the relay retries), so transport
//! trouble is logged as a warning, and at most once per [`QUIET_FOR`] per client with a count
//! of what was held back. Anything else keeps its level.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use studycafe_platform::liveness::Heartbeat;

use rdkafka::{
    TopicPartitionList,
    client::ClientContext,
    config::RDKafkaLogLevel,
    consumer::{BaseConsumer, ConsumerContext, Rebalance},
    error::{KafkaError, RDKafkaErrorCode},
};

/// How long transport warnings of one client stay quiet after one was logged.
const QUIET_FOR: Duration = Duration::from_secs(30);

/// The client context of every Kafka client of the messaging crate.
#[derive(Debug, Default)]
pub struct KafkaLogs {
    /// When a transport warning was last logged, and how many were held back since.
    transport: Mutex<(Option<Instant>, u64)>,
    /// A consumer's: busy from the start of a rebalance callback to its end.
    rebalance: Option<Heartbeat>,
}

impl KafkaLogs {
    /// The context of a consumer whose rebalances are watched by `heartbeat`.
    pub fn rebalancing(heartbeat: Heartbeat) -> Self {
        Self {
            rebalance: Some(heartbeat),
            ..Self::default()
        }
    }

    fn transport_warning(&self, message: &str) {
        let Ok(mut state) = self.transport.lock() else {
            return;
        };
        let (last, held_back) = &mut *state;
        if last.is_some_and(|at| at.elapsed() < QUIET_FOR) {
            *held_back += 1;
            return;
        }
        tracing::warn!(target: "librdkafka", held_back = *held_back, "{message}");
        *last = Some(Instant::now());
        *held_back = 0;
    }
}

fn is_transport(message: &str) -> bool {
    [
        "Connect to",
        "Connection refused",
        "Disconnected",
        "brokers are down",
        "transport failure",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

impl ClientContext for KafkaLogs {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning
                if is_transport(message) =>
            {
                self.transport_warning(message)
            }
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let transport = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::BrokerNotAvailable
            )
        );
        if transport {
            self.transport_warning(&format!("{error}: {reason}"));
        } else {
            tracing::error!(target: "librdkafka", %error, "{reason}");
        }
    }
}

/// Which partitions a consumer was given or lost: the first thing an operator asks when a
/// replica seems idle or a partition lags.
impl ConsumerContext for KafkaLogs {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        if let Some(heartbeat) = &self.rebalance {
            heartbeat.beat();
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Some(heartbeat) = &self.rebalance {
            heartbeat.waiting();
        }
        match rebalance {
            Rebalance::Assign(partitions) => tracing::info!(
                partitions = %describe(partitions),
                "partitions assigned"
            ),
            Rebalance::Revoke(partitions) => tracing::info!(
                partitions = %describe(partitions),
                "partitions revoked"
            ),
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance failed"),
        }
    }
}

/// `topic[0,1,2] other[3]`, or `none`.
fn describe(partitions: &TopicPartitionList) -> String {
    let mut by_topic: Vec<(String, Vec<i32>)> = Vec::new();
    for element in partitions.elements() {
        match by_topic.iter_mut().find(|(t, _)| t == element.topic()) {
            Some((_, list)) => list.push(element.partition()),
            None => by_topic.push((element.topic().to_owned(), vec![element.partition()])),
        }
    }
    if by_topic.is_empty() {
        return "none".to_owned();
    }
    by_topic
        .iter()
        .map(|(topic, list)| {
            let list: Vec<String> = list.iter().map(i32::to_string).collect();
            format!("{topic}[{}]", list.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_warnings_are_held_back_and_counted() {
        let logs = KafkaLogs::default();
        logs.transport_warning("Connect to 127.0.0.1:9092 failed: Connection refused");
        logs.transport_warning("Connect to 127.0.0.1:9092 failed: Connection refused");
        logs.transport_warning("1/1 brokers are down");
        let (last, held_back) = *logs.transport.lock().unwrap();
        assert!(last.is_some());
        assert_eq!(held_back, 2);
        assert!(is_transport(
            "Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
        ));
        assert!(!is_transport("Topic authorization failed"));
    }
}
