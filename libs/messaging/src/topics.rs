//! Creating the topics a service publishes to or reads from.
//!
//! Topics are created explicitly, with the partition count the services expect, rather than
//! relying on broker auto-creation (off on a well-run Apache Kafka, and with the wrong
//! partition count where on). Creation is idempotent; every service creates what it needs, so
//! no start-up order is imposed.

use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    error::RDKafkaErrorCode,
};
use tokio_util::sync::CancellationToken;

use crate::{KafkaConfig, logs::KafkaLogs};

/// Creates `topics` (with [`shared_events::topics::PARTITIONS`] partitions and the retention
/// [`shared_events::topics::retention_ms`] gives) unless they exist. An existing topic keeps
/// its settings: changing them is an operator's decision.
pub async fn ensure_topics(config: &KafkaConfig, topics: &[String]) -> anyhow::Result<()> {
    let admin: AdminClient<KafkaLogs> = config.admin().create_with_context(KafkaLogs::default())?;
    let retentions: Vec<String> = topics
        .iter()
        .map(|t| shared_events::topics::retention_ms(config.logical_topic(t)).to_string())
        .collect();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&retentions)
        .map(|(t, retention)| {
            NewTopic::new(
                t,
                shared_events::topics::PARTITIONS,
                TopicReplication::Fixed(1),
            )
            .set("retention.ms", retention)
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(&new_topics, &options).await?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// [`ensure_topics`], retried with backoff until it succeeds or `shutdown` fires (a broker
/// that is down at start-up must not stop a service from starting). Returns false on shutdown.
pub async fn ensure_topics_retrying(
    config: &KafkaConfig,
    topics: &[String],
    shutdown: &CancellationToken,
) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        // The attempt itself can take its full timeout against an unreachable broker; a
        // shutdown must not wait for it.
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return false,
            attempt = ensure_topics(config, topics) => attempt,
        };
        match attempt {
            Ok(()) => return true,
            Err(e) => tracing::warn!(error = %e, ?topics, "topics not ready, retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
