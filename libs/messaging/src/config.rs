//! Kafka client settings shared by producers, consumers and the admin client.

use std::time::Duration;

use rdkafka::ClientConfig;

/// How a service reaches the broker. Read by each service's own typed config.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Producer idempotence. On for Apache Kafka. Off for the embedded broker, where it costs a
    /// long latency tail; ordering then comes from one in-flight request per connection, and
    /// duplicates are absorbed by the idempotent consumers.
    pub idempotence: bool,
    /// `client.id`, shown in broker logs.
    pub client_id: String,
    /// `group.instance.id` (static membership): a restarted instance gets its partitions back
    /// at once instead of waiting for a rebalance. Must be unique per live instance.
    pub group_instance_id: Option<String>,
    /// How long a silent consumer stays in its group before its partitions are reassigned.
    pub session_timeout: Duration,
    /// Prepended to every topic name (`KAFKA_TOPIC_PREFIX`): several deployments (a staging
    /// suite, a second cafe chain, parallel test stacks) can share one Kafka cluster without
    /// hearing each other. Empty by default.
    pub topic_prefix: String,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            idempotence: false,
            client_id: client_id.into(),
            group_instance_id: None,
            session_timeout: Duration::from_secs(10),
            topic_prefix: String::new(),
        }
    }

    /// The name on the broker of the logical topic `name` (e.g. `studycafe.seat.v1`).
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    /// The logical name of the broker topic `physical`.
    pub fn logical_topic<'a>(&self, physical: &'a str) -> &'a str {
        physical
            .strip_prefix(self.topic_prefix.as_str())
            .unwrap_or(physical)
    }

    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            // Reconnect quickly after a broker restart; the default backoff grows to 10 s.
            .set("reconnect.backoff.max.ms", "1000")
            .set("log_level", "4");
        config
    }

    /// Producer settings for the outbox relay.
    pub fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("acks", "all")
            // A message not acknowledged in time fails back to the relay, which keeps the row and
            // retries it; a short timeout keeps the relay's view fresh during an outage.
            .set("message.timeout.ms", "15000")
            .set("linger.ms", "1")
            .set("compression.type", "none");
        if self.idempotence {
            config.set("enable.idempotence", "true");
        } else {
            config
                .set("enable.idempotence", "false")
                .set("max.in.flight.requests.per.connection", "1");
        }
        config
    }

    /// Consumer settings for one consumer group. Offsets are stored by hand after each event
    /// was applied and committed by the client in the background (and on shutdown).
    pub fn consumer(&self, group_id: &str) -> ClientConfig {
        let mut config = self.base();
        config
            // Prefixed like the topics: deployments sharing a cluster must not share groups
            // (static members of one would fence the other's).
            .set("group.id", format!("{}{group_id}", self.topic_prefix))
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                self.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (self.session_timeout.as_millis() / 3).max(500).to_string(),
            )
            .set("topic.metadata.refresh.interval.ms", "10000");
        if let Some(instance) = &self.group_instance_id {
            config.set("group.instance.id", instance);
        }
        config
    }

    /// Admin client settings (topic creation).
    pub fn admin(&self) -> ClientConfig {
        self.base()
    }
}

impl KafkaConfig {
    /// `KAFKA_BROKERS` (default `127.0.0.1:9092`), `KAFKA_IDEMPOTENCE` (default false: right
    /// for the embedded broker; set true on Apache Kafka), `KAFKA_GROUP_INSTANCE_ID` (optional,
    /// unique per instance), `KAFKA_SESSION_TIMEOUT_MS` (default 10000), `KAFKA_TOPIC_PREFIX`
    /// (default empty).
    pub fn from_env(
        env: &studycafe_platform::config::Env,
        client_id: &str,
    ) -> Result<Self, studycafe_platform::config::ConfigError> {
        use studycafe_platform::config::ConfigError;
        let brokers: String = env.or("KAFKA_BROKERS", "127.0.0.1:9092".to_owned())?;
        if brokers.split(',').any(|b| !b.contains(':')) {
            return Err(ConfigError::new(
                "KAFKA_BROKERS",
                format!("{brokers:?} must be host:port[,host:port…]"),
            ));
        }
        Ok(Self {
            brokers,
            idempotence: env.flag("KAFKA_IDEMPOTENCE", false)?,
            client_id: client_id.to_owned(),
            group_instance_id: env.optional("KAFKA_GROUP_INSTANCE_ID")?,
            session_timeout: env.millis(
                "KAFKA_SESSION_TIMEOUT_MS",
                Duration::from_secs(10),
                Duration::from_secs(6),
                Duration::from_secs(300),
            )?,
            topic_prefix: {
                let prefix: String = env.or("KAFKA_TOPIC_PREFIX", String::new())?;
                let valid = prefix.len() <= 100
                    && prefix
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                if !valid {
                    return Err(ConfigError::new(
                        "KAFKA_TOPIC_PREFIX",
                        "at most 100 letters, digits, '.', '_' or '-'",
                    ));
                }
                prefix
            },
        })
    }
}
