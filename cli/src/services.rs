//! The services of the suite, as a table: adding a service (identity, gateway, registration,
//! payment, seat-view) is one row here. `up` starts them in table order, so a row may depend
//! on the rows above it (everything needs the broker).
//!
//! Each service is configured only by environment variables; the ones a row lists are set by
//! `up` (overriding the user's), everything else in the environment passes through.

use std::{collections::HashSet, time::Duration};

use studycafe_platform::config::{ConfigError, Env};

use crate::{data_dir::DataDir, exit::UsageError, keys::SEAT_CLIENT_ID};

/// The operator account `up` creates (identity's `IDENTITY_ADMIN_*`), documented in the README
/// with the demo customers identity creates in embedded mode.
pub const DEMO_ADMIN: (&str, &str) = ("admin", "admin-studies");

/// seat's second port, its gRPC API (`studycafe.seat.v1`): the variable that moves it and its
/// default, the first free port after the services' 8080…8086.
pub const SEAT_GRPC_PORT_VAR: &str = "STUDYCAFE_SEAT_GRPC_PORT";
pub const SEAT_GRPC_DEFAULT_PORT: u16 = 8087;

/// How many replicas of which service `up` runs, e.g. `seat=2,payment=2` (`--replicas` wins
/// over it). Every other service runs once.
pub const REPLICAS_VAR: &str = "STUDYCAFE_REPLICAS";
const MAX_REPLICAS: usize = 9;
/// Distance between two ports of one service: replica `r` (0-based) listens on
/// `base + PORT_STEP * 2r`, and its successor during a rollout on `base + PORT_STEP * (2r + 1)`.
/// The defaults (8080…8087, 9092) differ modulo the step, so no two services ever collide.
pub const PORT_STEP: u16 = 100;

/// One process slot of a service: which replica, and which of its two ports (a rollout starts
/// the successor on the other one while the old process still serves, so the balancer, which
/// knows both, moves traffic over by readiness alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    /// 0-based.
    pub replica: usize,
    /// 0 or 1.
    pub side: usize,
}

impl Instance {
    pub const FIRST: Self = Self {
        replica: 0,
        side: 0,
    };
}

/// How a service's processes are replaced by `studycafe rollout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// The successor listens on the replica's other port; the balancer knows both.
    OtherPort,
    /// The successor binds the same port beside the old process (`SO_REUSEPORT`): the
    /// gateway, the one address clients know.
    SamePort,
    /// Not at all: the embedded broker is a single node holding the log; a second one on the
    /// same log would corrupt it. (On Kubernetes, Kafka is a StatefulSet of several brokers
    /// restarted one at a time with replicated partitions.)
    Never,
}

/// How `up` knows a service is ready to be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Its port accepts TCP connections.
    TcpConnect,
    /// `GET http://127.0.0.1:<port><path>` answers 200.
    HttpOk(&'static str),
}

/// What runs a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// An executable of this workspace, built by cargo.
    Cargo {
        executable: &'static str,
        /// The cargo package that builds `executable`.
        package: &'static str,
    },
    /// A Python service in its own folder of the repository, run from the virtual environment
    /// its `scripts/venv` creates there (idempotently, from its lock file).
    Python {
        /// The folder, relative to the repository root.
        project: &'static str,
        /// The console script in the environment's `bin/`.
        script: &'static str,
    },
}

/// One row of the table.
#[derive(Debug)]
pub struct ServiceSpec {
    pub name: &'static str,
    pub program: Program,
    /// The variable that moves its port, and the port without it.
    pub port_var: &'static str,
    pub default_port: u16,
    pub readiness: Readiness,
    /// The configuration of one of its processes, given the resolved suite.
    pub env: fn(&Suite, Instance) -> Vec<(&'static str, String)>,
    /// Where it listens, for the summary.
    pub endpoint: fn(u16) -> String,
}

pub static SERVICES: &[ServiceSpec] = &[
    ServiceSpec {
        name: "broker",
        program: Program::Cargo {
            executable: "studycafe-broker",
            package: "studycafe-broker",
        },
        port_var: "STUDYCAFE_BROKER_PORT",
        default_port: 9092,
        readiness: Readiness::TcpConnect,
        env: |suite, me| {
            vec![
                ("BROKER_LISTEN_ADDR", suite.addr_of("broker", me)),
                (
                    "BROKER_DATA_DIR",
                    suite.data.root().join("broker").display().to_string(),
                ),
            ]
        },
        endpoint: |port| format!("127.0.0.1:{port} (Kafka protocol)"),
    },
    ServiceSpec {
        name: "identity",
        program: Program::Cargo {
            executable: "identity-service",
            package: "identity-service",
        },
        port_var: "STUDYCAFE_IDENTITY_PORT",
        default_port: 8085,
        readiness: Readiness::HttpOk("/health/ready"),
        env: |suite, me| {
            vec![
                ("IDENTITY_HTTP_ADDR", suite.addr_of("identity", me)),
                ("IDENTITY_DATABASE_URL", suite.database("identity")),
                (
                    "IDENTITY_KEYS_DIR",
                    suite.data.identity_keys().display().to_string(),
                ),
                ("IDENTITY_ADMIN_USERNAME", DEMO_ADMIN.0.to_owned()),
                ("IDENTITY_ADMIN_PASSWORD", DEMO_ADMIN.1.to_owned()),
                ("IDENTITY_DEMO_ACCOUNTS", "true".to_owned()),
                (
                    "IDENTITY_CLIENTS",
                    format!("{SEAT_CLIENT_ID}:{}", suite.seat_client_secret),
                ),
            ]
        },
        endpoint: |port| format!("http://127.0.0.1:{port} (accounts, /auth/token, JWKS)"),
    },
    ServiceSpec {
        name: "payment",
        program: Program::Cargo {
            executable: "payment-service",
            package: "payment-service",
        },
        port_var: "STUDYCAFE_PAYMENT_PORT",
        default_port: 8083,
        readiness: Readiness::HttpOk("/health/ready"),
        env: |suite, me| {
            let mut env = vec![
                ("PAYMENT_HTTP_ADDR", suite.addr_of("payment", me)),
                ("PAYMENT_DATABASE_URL", suite.database("payment")),
            ];
            env.extend(suite.common("payment", me));
            env
        },
        endpoint: |port| format!("http://127.0.0.1:{port} (payments, card simulator)"),
    },
    ServiceSpec {
        name: "seat",
        program: Program::Cargo {
            executable: "seat-service",
            package: "seat-service",
        },
        port_var: "STUDYCAFE_SEAT_PORT",
        default_port: 8081,
        readiness: Readiness::HttpOk("/health/ready"),
        env: |suite, me| {
            let mut env = vec![
                ("SEAT_HTTP_ADDR", suite.addr_of("seat", me)),
                ("SEAT_GRPC_ADDR", suite.seat_grpc_addr(me)),
                ("SEAT_DATABASE_URL", suite.database("seat")),
                ("SEAT_PAYMENT_URL", suite.urls("payment")),
                ("SEAT_TOKEN_URL", suite.token_url()),
                ("SEAT_CLIENT_ID", SEAT_CLIENT_ID.to_owned()),
                ("SEAT_CLIENT_SECRET", suite.seat_client_secret.clone()),
            ];
            env.extend(suite.common("seat", me));
            env
        },
        endpoint: |port| format!("http://127.0.0.1:{port} (seats, reservations)"),
    },
    ServiceSpec {
        name: "registration",
        program: Program::Cargo {
            executable: "registration-service",
            package: "registration-service",
        },
        port_var: "STUDYCAFE_REGISTRATION_PORT",
        default_port: 8082,
        readiness: Readiness::HttpOk("/health/ready"),
        env: |suite, me| {
            let mut env = vec![
                ("REGISTRATION_HTTP_ADDR", suite.addr_of("registration", me)),
                ("REGISTRATION_DATABASE_URL", suite.database("registration")),
            ];
            env.extend(suite.common("registration", me));
            env
        },
        endpoint: |port| format!("http://127.0.0.1:{port} (cafe admin: bookings)"),
    },
    ServiceSpec {
        name: "seat-view",
        program: Program::Cargo {
            executable: "seat-view-service",
            package: "seat-view-service",
        },
        port_var: "STUDYCAFE_SEAT_VIEW_PORT",
        default_port: 8084,
        readiness: Readiness::HttpOk("/health/ready"),
        env: |suite, me| {
            let mut env = vec![
                ("SEAT_VIEW_HTTP_ADDR", suite.addr_of("seat-view", me)),
                ("SEAT_VIEW_DATABASE_URL", suite.database("seat-view")),
            ];
            env.extend(suite.common("seat-view", me));
            env
        },
        endpoint: |port| format!("http://127.0.0.1:{port} (board, live stream, my reservations)"),
    },
    ServiceSpec {
        name: "notification",
        program: Program::Python {
            project: "services/notification",
            script: "notification-service",
        },
        port_var: "STUDYCAFE_NOTIFICATION_PORT",
        default_port: 8086,
        readiness: Readiness::HttpOk("/health/ready"),
        env: |suite, me| {
            let mut env = vec![
                ("NOTIFICATION_HTTP_ADDR", suite.addr_of("notification", me)),
                (
                    "NOTIFICATION_DATA_DIR",
                    suite.data.root().join("notification").display().to_string(),
                ),
                ("NOTIFICATION_SCHEMAS_DIR", SCHEMAS_DIR.to_owned()),
            ];
            env.extend(suite.common("notification", me));
            env
        },
        endpoint: |port| format!("http://127.0.0.1:{port} (customers' notifications, live stream)"),
    },
    ServiceSpec {
        name: "gateway",
        program: Program::Cargo {
            executable: "gateway",
            package: "studycafe-gateway",
        },
        port_var: "STUDYCAFE_GATEWAY_PORT",
        default_port: 8080,
        readiness: Readiness::HttpOk("/health/ready"),
        env: |suite, me| {
            vec![
                ("GATEWAY_HTTP_ADDR", suite.addr_of("gateway", me)),
                ("GATEWAY_IDENTITY_URL", suite.urls("identity")),
                ("GATEWAY_SEAT_URL", suite.urls("seat")),
                ("GATEWAY_REGISTRATION_URL", suite.urls("registration")),
                ("GATEWAY_PAYMENT_URL", suite.urls("payment")),
                ("GATEWAY_SEAT_VIEW_URL", suite.urls("seat-view")),
                ("GATEWAY_NOTIFICATION_URL", suite.urls("notification")),
                ("GATEWAY_WEB_ROOT", suite.web_root.display().to_string()),
                ("AUTH_JWKS_URL", suite.jwks_url()),
            ]
        },
        endpoint: |port| format!("http://127.0.0.1:{port} (the public API and web page)"),
    },
];

/// The suite as this run of `up` lays it out: the data directory and every service's port.
#[derive(Debug, Clone)]
pub struct Suite {
    pub data: DataDir,
    /// Parallel to [`SERVICES`]: each service's base port (its variable's).
    ports: Vec<u16>,
    /// Parallel to [`SERVICES`]: how many replicas of each service run
    /// ([`REPLICAS_VAR`], `--replicas`).
    replicas: Vec<usize>,
    /// seat's gRPC base port ([`SEAT_GRPC_PORT_VAR`]).
    pub seat_grpc_port: u16,
    /// seat's machine-client secret at identity (see `keys`).
    pub seat_client_secret: String,
    /// The gateway's static web root: the web app's build (see `web_app`).
    pub web_root: std::path::PathBuf,
    /// The production engines, when `STUDYCAFE_STACK=production`; otherwise SQLite files and
    /// the embedded broker.
    pub engines: Option<Engines>,
    /// How `up` probes each service's liveness.
    pub liveness: LivenessProbe,
}

/// `up`'s liveness probe, as a kubelet's: every `period` each service's `/health/live` is
/// asked, with `timeout`; after `failure_threshold` failures in a row the process is killed
/// (SIGTERM, SIGKILL after a short grace) and restarted. A hung process (SIGSTOP, a deadlock)
/// does not answer in time, so it is restarted too, not only one that exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessProbe {
    /// `STUDYCAFE_LIVENESS_PERIOD_SECS` (default 10, 1–3600).
    pub period: Duration,
    /// `STUDYCAFE_LIVENESS_TIMEOUT_SECS` (default 2, 1–60, at most the period).
    pub timeout: Duration,
    /// `STUDYCAFE_LIVENESS_FAILURE_THRESHOLD` (default 3, 1–100).
    pub failure_threshold: u32,
}

impl LivenessProbe {
    fn from_env(env: &Env) -> Result<Self, UsageError> {
        let usage = |e: ConfigError| UsageError(e.to_string());
        let period: u64 = env
            .within("STUDYCAFE_LIVENESS_PERIOD_SECS", 10, 1..=3600)
            .map_err(usage)?;
        let timeout: u64 = env
            .within("STUDYCAFE_LIVENESS_TIMEOUT_SECS", 2, 1..=60)
            .map_err(usage)?;
        if timeout > period {
            return Err(UsageError(format!(
                "STUDYCAFE_LIVENESS_TIMEOUT_SECS: {timeout} s is longer than the probe period \
                 (STUDYCAFE_LIVENESS_PERIOD_SECS, {period} s)"
            )));
        }
        let failure_threshold = env
            .within("STUDYCAFE_LIVENESS_FAILURE_THRESHOLD", 3, 1..=100)
            .map_err(usage)?;
        Ok(Self {
            period: Duration::from_secs(period),
            timeout: Duration::from_secs(timeout),
            failure_threshold,
        })
    }
}

/// Where the production stack's engines listen (`scripts/engines/up` starts them with these
/// defaults and creates the databases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engines {
    /// `STUDYCAFE_POSTGRES_URL`: the server; seat, registration and identity each use their
    /// own database on it.
    pub postgres: String,
    /// `STUDYCAFE_MYSQL_URL`: the server; payment uses its `payment` database.
    pub mysql: String,
    /// `STUDYCAFE_REDIS_URL`: seat-view's views.
    pub redis: String,
    /// `STUDYCAFE_KAFKA_BROKERS`: Apache Kafka.
    pub kafka: String,
}

impl Engines {
    fn from_env(env: &Env) -> Result<Option<Self>, UsageError> {
        let stack: String = env
            .or("STUDYCAFE_STACK", "embedded".to_owned())
            .map_err(|e| UsageError(e.to_string()))?;
        match stack.as_str() {
            "embedded" => return Ok(None),
            "production" => {}
            other => {
                return Err(UsageError(format!(
                    "STUDYCAFE_STACK: {other:?} is neither \"embedded\" nor \"production\""
                )));
            }
        }
        let url = |var: &str, default: &str, schemes: &[&str]| {
            let value: String = env
                .or(var, default.to_owned())
                .map_err(|e| UsageError(e.to_string()))?;
            if !schemes.iter().any(|s| value.starts_with(s)) {
                return Err(UsageError(format!(
                    "{var}: {value:?} must start with {}",
                    schemes.join(" or ")
                )));
            }
            Ok(value.trim_end_matches('/').to_owned())
        };
        let kafka: String = env
            .or("STUDYCAFE_KAFKA_BROKERS", "127.0.0.1:19092".to_owned())
            .map_err(|e| UsageError(e.to_string()))?;
        Ok(Some(Self {
            postgres: url(
                "STUDYCAFE_POSTGRES_URL",
                "postgres://studycafe:studycafe@127.0.0.1:15432",
                &["postgres://", "postgresql://"],
            )?,
            mysql: url(
                "STUDYCAFE_MYSQL_URL",
                "mysql://studycafe:studycafe@127.0.0.1:13306",
                &["mysql://", "mariadb://"],
            )?,
            redis: url(
                "STUDYCAFE_REDIS_URL",
                "redis://127.0.0.1:16379",
                &["redis://"],
            )?,
            kafka,
        }))
    }
}

impl Suite {
    /// Reads each service's port variable from `env`; a malformed or repeated port is a
    /// configuration error.
    pub fn new(data: DataDir, env: &Env) -> Result<Self, UsageError> {
        let mut ports = Vec::with_capacity(SERVICES.len());
        let mut seen = HashSet::new();
        for spec in SERVICES {
            let port: u16 = env
                .or(spec.port_var, spec.default_port)
                .map_err(|e: ConfigError| UsageError(e.to_string()))?;
            if port == 0 {
                return Err(UsageError(format!(
                    "{}: must be a port between 1 and 65535",
                    spec.port_var
                )));
            }
            if !seen.insert(port) {
                return Err(UsageError(format!(
                    "{}: port {port} is already used by another service of the suite",
                    spec.port_var
                )));
            }
            ports.push(port);
        }
        let seat_grpc_port: u16 = env
            .or(SEAT_GRPC_PORT_VAR, SEAT_GRPC_DEFAULT_PORT)
            .map_err(|e: ConfigError| UsageError(e.to_string()))?;
        if seat_grpc_port == 0 {
            return Err(UsageError(format!(
                "{SEAT_GRPC_PORT_VAR}: must be a port between 1 and 65535"
            )));
        }
        if !seen.insert(seat_grpc_port) {
            return Err(UsageError(format!(
                "{SEAT_GRPC_PORT_VAR}: port {seat_grpc_port} is already used by another service of the suite"
            )));
        }
        let mut suite = Self {
            data,
            replicas: vec![1; ports.len()],
            ports,
            seat_grpc_port,
            seat_client_secret: String::new(),
            web_root: crate::web_app::web_root(),
            engines: Engines::from_env(env)?,
            liveness: LivenessProbe::from_env(env)?,
        };
        let replicas: Option<String> = env
            .optional(REPLICAS_VAR)
            .map_err(|e| UsageError(e.to_string()))?;
        match replicas {
            Some(replicas) => suite.set_replicas(REPLICAS_VAR, &replicas)?,
            None => suite.check_ports().map_err(UsageError)?,
        }
        Ok(suite)
    }

    /// Sets the replica counts from `spec` (`seat=2,payment=2`), named `source` in errors;
    /// services it does not name run once. Checks that every port this makes is free of the
    /// others.
    pub fn set_replicas(&mut self, source: &str, spec: &str) -> Result<(), UsageError> {
        let error = |why: String| UsageError(format!("{source}: {why}"));
        let mut replicas = vec![1; SERVICES.len()];
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, count) = item
                .split_once('=')
                .ok_or_else(|| error(format!("{item:?} is not SERVICE=COUNT")))?;
            let index = SERVICES
                .iter()
                .position(|s| s.name == name.trim())
                .ok_or_else(|| {
                    error(format!(
                        "no service {:?} (services: {})",
                        name.trim(),
                        names()
                    ))
                })?;
            let count: usize = count
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=MAX_REPLICAS).contains(n))
                .ok_or_else(|| error(format!("{item:?}: the count must be 1 to {MAX_REPLICAS}")))?;
            if count > 1 && handover(&SERVICES[index]) != Handover::OtherPort {
                return Err(error(format!(
                    "{} runs once (it is {})",
                    SERVICES[index].name,
                    if SERVICES[index].name == "broker" {
                        "the single-node embedded broker"
                    } else {
                        "the one listener clients know"
                    }
                )));
            }
            replicas[index] = count;
        }
        self.replicas = replicas;
        self.check_ports().map_err(error)
    }

    /// Every port of every process slot, distinct and in range.
    fn check_ports(&self) -> Result<(), String> {
        let mut seen = HashSet::new();
        for spec in self.services() {
            let sides = if handover(spec) == Handover::OtherPort {
                2
            } else {
                1
            };
            let slots = self
                .instances(spec)
                .flat_map(|i| (0..sides).map(move |side| Instance { side, ..i }));
            for instance in slots {
                let mut ports = vec![(spec.port_var, self.try_port(spec.name, instance))];
                if spec.name == "seat" {
                    ports.push((
                        SEAT_GRPC_PORT_VAR,
                        self.try_slot_port(self.seat_grpc_port, instance),
                    ));
                }
                for (var, port) in ports {
                    let port = port.ok_or_else(|| {
                        format!(
                            "{} replica {} would listen beyond port 65535 ({var} is too high)",
                            spec.name,
                            instance.replica + 1
                        )
                    })?;
                    if !seen.insert(port) {
                        return Err(format!(
                            "{} replica {} would listen on port {port}, which another service of the suite uses (move {var})",
                            spec.name,
                            instance.replica + 1
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// How many replicas of `service` run.
    pub fn replicas(&self, service: &str) -> usize {
        self.replicas[index(service)]
    }

    /// `service`'s replicas, on their first ports.
    pub fn instances(&self, spec: &ServiceSpec) -> impl Iterator<Item = Instance> + use<> {
        (0..self.replicas(spec.name)).map(|replica| Instance { replica, side: 0 })
    }

    fn try_slot_port(&self, base: u16, instance: Instance) -> Option<u16> {
        let slot = u16::try_from(2 * instance.replica + instance.side).ok()?;
        base.checked_add(PORT_STEP.checked_mul(slot)?)
    }

    fn try_port(&self, service: &str, instance: Instance) -> Option<u16> {
        let base = self.port(service);
        match handover(&SERVICES[index(service)]) {
            Handover::OtherPort => self.try_slot_port(base, instance),
            Handover::SamePort | Handover::Never => Some(base),
        }
    }

    /// The port of one process slot of `service` (checked at construction).
    pub fn port_of(&self, service: &str, instance: Instance) -> u16 {
        self.try_port(service, instance)
            .expect("ports are checked when the suite is made")
    }

    /// Where one process slot of `service` listens. Always loopback: the one-machine suite
    /// has no authentication between services and must not be reachable from the network.
    pub fn addr_of(&self, service: &str, instance: Instance) -> String {
        format!("127.0.0.1:{}", self.port_of(service, instance))
    }

    fn seat_grpc_addr(&self, instance: Instance) -> String {
        let port = self
            .try_slot_port(self.seat_grpc_port, instance)
            .expect("ports are checked when the suite is made");
        format!("127.0.0.1:{port}")
    }

    /// Every base URL `service` may be reached at, comma-separated: both ports of each
    /// replica. At any moment one of each pair answers (both during its rollout); the
    /// balancer (the gateway, seat's payment client) sends only to the ready ones.
    pub fn urls(&self, service: &str) -> String {
        let spec = &SERVICES[index(service)];
        let sides: &[usize] = match handover(spec) {
            Handover::OtherPort => &[0, 1],
            Handover::SamePort | Handover::Never => &[0],
        };
        self.instances(spec)
            .flat_map(|i| sides.iter().map(move |&side| Instance { side, ..i }))
            .map(|i| format!("http://{}", self.addr_of(service, i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `service`'s base port: its first replica's.
    pub fn port(&self, service: &str) -> u16 {
        self.ports[index(service)]
    }

    /// The services this suite runs, in start order: all of them, but the embedded broker
    /// when Kafka is an engine of the production stack.
    pub fn services(&self) -> impl Iterator<Item = &'static ServiceSpec> + '_ {
        SERVICES
            .iter()
            .filter(|spec| !(spec.name == "broker" && self.engines.is_some()))
    }

    /// `service`'s database: `sqlite://<data>/<service>.db`, or on the production stack its
    /// database on the engine that suits it.
    pub fn database(&self, service: &str) -> String {
        match &self.engines {
            None => format!(
                "sqlite://{}",
                self.data.root().join(format!("{service}.db")).display()
            ),
            Some(engines) => match service {
                "payment" => format!("{}/payment", engines.mysql),
                "seat-view" => engines.redis.clone(),
                other => format!("{}/{other}", engines.postgres),
            },
        }
    }

    pub fn kafka_brokers(&self) -> String {
        match &self.engines {
            None => self.addr_of("broker", Instance::FIRST),
            Some(engines) => engines.kafka.clone(),
        }
    }

    /// identity's keys, through the gateway: a service takes one JWKS URL, and identity's
    /// replicas move between their ports as they are rolled out, which the gateway follows.
    /// Fetched lazily, so the gateway starting last does not matter.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.gateway_url())
    }

    /// identity's token endpoint, through the gateway (see [`Self::jwks_url`]).
    fn token_url(&self) -> String {
        format!("{}/auth/token", self.gateway_url())
    }

    fn gateway_url(&self) -> String {
        format!("http://{}", self.addr_of("gateway", Instance::FIRST))
    }

    /// What every service on the broker that checks tokens needs, with each process's static
    /// group member id. On Apache Kafka it is `<service>-<replica>`, and its successor's during
    /// a rollout `<service>-<replica>b`: the two are in the group at once for a moment, and the
    /// old one's partitions pass on after the session timeout. The embedded broker (Tansu 0.6)
    /// never expires a departed member of a formed group (measured: after a rollout with two
    /// ids the sagas stopped for good; with no static ids a SIGKILLed replica stopped them),
    /// so there the successor takes over the old process's id and with it its partitions.
    fn common(&self, service: &str, me: Instance) -> Vec<(&'static str, String)> {
        let side = if me.side == 1 && self.engines.is_some() {
            "b"
        } else {
            ""
        };
        vec![
            ("KAFKA_BROKERS", self.kafka_brokers()),
            // Apache Kafka serves idempotent producers well; the embedded broker does not.
            ("KAFKA_IDEMPOTENCE", self.engines.is_some().to_string()),
            (
                "KAFKA_GROUP_INSTANCE_ID",
                format!("{service}-{}{side}", me.replica + 1),
            ),
            ("AUTH_JWKS_URL", self.jwks_url()),
        ]
    }

    /// The environment of one process slot of `spec`.
    pub fn env(&self, spec: &ServiceSpec, instance: Instance) -> Vec<(&'static str, String)> {
        let mut env = (spec.env)(self, instance);
        // The broker is never rolled out, and no balancer sends it requests.
        if handover(spec) != Handover::Never {
            env.push(("SHUTDOWN_DRAIN_MS", DRAIN.as_millis().to_string()));
        }
        env
    }
}

/// How long a stopping process keeps serving while it reports not ready (`SHUTDOWN_DRAIN_MS`):
/// longer than the balancers in the gateway and seat take to see it (a check each second,
/// answered within half a second), so none sends it a request after its listener closed. What
/// Kubernetes' `preStop` sleep does for pods.
pub const DRAIN: Duration = Duration::from_millis(2000);

/// How `spec`'s processes are replaced (see [`Handover`]).
pub fn handover(spec: &ServiceSpec) -> Handover {
    match spec.name {
        "broker" => Handover::Never,
        "gateway" => Handover::SamePort,
        _ => Handover::OtherPort,
    }
}

/// The name of `service`'s replica `replica` (0-based) in logs, PID files and messages: the
/// first is the service's own name, as when it runs once.
pub fn instance_name(service: &str, replica: usize) -> String {
    if replica == 0 {
        service.to_owned()
    } else {
        format!("{service}-{}", replica + 1)
    }
}

fn index(service: &str) -> usize {
    SERVICES
        .iter()
        .position(|s| s.name == service)
        .unwrap_or_else(|| panic!("no service {service:?} in the table"))
}

fn names() -> String {
    SERVICES
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The repository root, where the Python services' folders are.
pub const REPOSITORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The published language's JSON Schemas, which the notification service validates against.
const SCHEMAS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared-events/schemas");

/// The `STUDYCAFE_*` variables of this process. Only those: `Env::from_process` would panic on
/// an unrelated variable that is not UTF-8.
pub fn studycafe_env() -> Env {
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("STUDYCAFE_"))
        .collect();
    Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn suite(vars: &[(&str, &str)]) -> Result<Suite, UsageError> {
        let data = DataDir::resolve(Some("/srv/sc".into()), None, Path::new("/"));
        Suite::new(data, &Env::from_pairs(vars.iter().copied()))
    }

    fn env_of(suite: &Suite, name: &str) -> Vec<(&'static str, String)> {
        suite.env(
            SERVICES.iter().find(|s| s.name == name).unwrap(),
            Instance::FIRST,
        )
    }

    #[test]
    fn default_ports_and_env() {
        let suite = suite(&[]).unwrap();
        assert_eq!(
            env_of(&suite, "broker"),
            vec![
                ("BROKER_LISTEN_ADDR", "127.0.0.1:9092".to_owned()),
                ("BROKER_DATA_DIR", "/srv/sc/broker".to_owned()),
            ]
        );
        let seat = env_of(&suite, "seat");
        for expected in [
            ("SEAT_HTTP_ADDR", "127.0.0.1:8081"),
            ("SEAT_GRPC_ADDR", "127.0.0.1:8087"),
            ("SEAT_DATABASE_URL", "sqlite:///srv/sc/seat.db"),
            (
                "SEAT_PAYMENT_URL",
                "http://127.0.0.1:8083,http://127.0.0.1:8183",
            ),
            ("SEAT_TOKEN_URL", "http://127.0.0.1:8080/auth/token"),
            ("SHUTDOWN_DRAIN_MS", "2000"),
            ("KAFKA_BROKERS", "127.0.0.1:9092"),
            ("KAFKA_GROUP_INSTANCE_ID", "seat-1"),
            (
                "AUTH_JWKS_URL",
                "http://127.0.0.1:8080/.well-known/jwks.json",
            ),
        ] {
            assert!(
                seat.contains(&(expected.0, expected.1.to_owned())),
                "{expected:?} in {seat:?}"
            );
        }
        let gateway = env_of(&suite, "gateway");
        assert!(gateway.contains(&(
            "GATEWAY_SEAT_VIEW_URL",
            "http://127.0.0.1:8084,http://127.0.0.1:8184".to_owned()
        )));
        assert!(gateway.contains(&(
            "GATEWAY_NOTIFICATION_URL",
            "http://127.0.0.1:8086,http://127.0.0.1:8186".to_owned()
        )));
        let notification = env_of(&suite, "notification");
        for expected in [
            ("NOTIFICATION_HTTP_ADDR", "127.0.0.1:8086"),
            ("NOTIFICATION_DATA_DIR", "/srv/sc/notification"),
            ("KAFKA_BROKERS", "127.0.0.1:9092"),
            ("KAFKA_GROUP_INSTANCE_ID", "notification-1"),
        ] {
            assert!(
                notification.contains(&(expected.0, expected.1.to_owned())),
                "{expected:?} in {notification:?}"
            );
        }
    }

    #[test]
    fn ports_move_with_their_variables_and_dependents_follow() {
        let suite = suite(&[
            ("STUDYCAFE_BROKER_PORT", "19092"),
            ("STUDYCAFE_SEAT_PORT", "18081"),
            ("STUDYCAFE_SEAT_GRPC_PORT", "18087"),
        ])
        .unwrap();
        let seat = env_of(&suite, "seat");
        assert!(seat.contains(&("SEAT_HTTP_ADDR", "127.0.0.1:18081".to_owned())));
        assert!(seat.contains(&("SEAT_GRPC_ADDR", "127.0.0.1:18087".to_owned())));
        assert!(seat.contains(&("KAFKA_BROKERS", "127.0.0.1:19092".to_owned())));
        assert!(
            env_of(&suite, "broker")
                .contains(&("BROKER_LISTEN_ADDR", "127.0.0.1:19092".to_owned()))
        );
    }

    #[test]
    fn the_production_stack_uses_the_engines_and_no_embedded_broker() {
        let production = suite(&[("STUDYCAFE_STACK", "production")]).unwrap();
        let names: Vec<&str> = production.services().map(|s| s.name).collect();
        assert!(!names.contains(&"broker"), "{names:?}");
        let seat = env_of(&production, "seat");
        assert!(seat.contains(&(
            "SEAT_DATABASE_URL",
            "postgres://studycafe:studycafe@127.0.0.1:15432/seat".to_owned()
        )));
        assert!(seat.contains(&("KAFKA_BROKERS", "127.0.0.1:19092".to_owned())));
        assert!(seat.contains(&("KAFKA_IDEMPOTENCE", "true".to_owned())));
        assert!(env_of(&production, "payment").contains(&(
            "PAYMENT_DATABASE_URL",
            "mysql://studycafe:studycafe@127.0.0.1:13306/payment".to_owned()
        )));
        assert!(env_of(&production, "seat-view").contains(&(
            "SEAT_VIEW_DATABASE_URL",
            "redis://127.0.0.1:16379".to_owned()
        )));
        assert!(suite(&[("STUDYCAFE_STACK", "cloud")]).is_err());
        let bad = suite(&[
            ("STUDYCAFE_STACK", "production"),
            ("STUDYCAFE_POSTGRES_URL", "mysql://x"),
        ])
        .unwrap_err();
        assert!(bad.0.contains("STUDYCAFE_POSTGRES_URL"), "{bad}");
        let embedded = suite(&[]).unwrap();
        assert_eq!(embedded.services().count(), SERVICES.len());
    }

    #[test]
    fn bad_ports_are_configuration_errors() {
        assert!(suite(&[("STUDYCAFE_SEAT_PORT", "http")]).is_err());
        let probe = suite(&[]).unwrap().liveness;
        assert_eq!(
            (probe.period, probe.timeout, probe.failure_threshold),
            (Duration::from_secs(10), Duration::from_secs(2), 3)
        );
        let short = suite(&[
            ("STUDYCAFE_LIVENESS_PERIOD_SECS", "1"),
            ("STUDYCAFE_LIVENESS_TIMEOUT_SECS", "1"),
            ("STUDYCAFE_LIVENESS_FAILURE_THRESHOLD", "2"),
        ])
        .unwrap()
        .liveness;
        assert_eq!(short.failure_threshold, 2);
        for (var, bad) in [
            ("STUDYCAFE_LIVENESS_PERIOD_SECS", "0"),
            ("STUDYCAFE_LIVENESS_TIMEOUT_SECS", "11"),
            ("STUDYCAFE_LIVENESS_FAILURE_THRESHOLD", "none"),
        ] {
            let error = suite(&[(var, bad)]).unwrap_err();
            assert!(error.0.contains(var), "{error}");
        }
        assert!(suite(&[("STUDYCAFE_SEAT_PORT", "70000")]).is_err());
        assert!(suite(&[("STUDYCAFE_SEAT_PORT", "0")]).is_err());
        let clash = suite(&[("STUDYCAFE_SEAT_PORT", "9092")]).unwrap_err();
        assert!(clash.0.contains("STUDYCAFE_SEAT_PORT"), "{clash}");
        assert!(suite(&[("STUDYCAFE_SEAT_GRPC_PORT", "0")]).is_err());
        let clash = suite(&[("STUDYCAFE_SEAT_GRPC_PORT", "8081")]).unwrap_err();
        assert!(clash.0.contains("STUDYCAFE_SEAT_GRPC_PORT"), "{clash}");
    }

    #[test]
    fn every_row_is_well_formed() {
        let suite = suite(&[]).unwrap();
        let mut names = HashSet::new();
        for (i, spec) in SERVICES.iter().enumerate() {
            assert!(names.insert(spec.name), "duplicate service {}", spec.name);
            // Building the env panics when a row refers to a service missing from the table.
            for (var, _) in suite.env(spec, Instance::FIRST) {
                assert!(!var.starts_with("STUDYCAFE_"), "{var}");
            }
            assert!(!(spec.endpoint)(suite.ports[i]).is_empty());
        }
    }

    #[test]
    fn replicas_get_their_own_ports_and_member_ids_and_dependents_get_every_url() {
        let suite = suite(&[("STUDYCAFE_REPLICAS", "seat=2,payment=2")]).unwrap();
        let seat = SERVICES.iter().find(|s| s.name == "seat").unwrap();
        assert_eq!(suite.instances(seat).count(), 2);
        let second = Instance {
            replica: 1,
            side: 0,
        };
        let successor = Instance {
            replica: 1,
            side: 1,
        };
        let env = suite.env(seat, second);
        for expected in [
            ("SEAT_HTTP_ADDR", "127.0.0.1:8281"),
            ("SEAT_GRPC_ADDR", "127.0.0.1:8287"),
            ("SEAT_DATABASE_URL", "sqlite:///srv/sc/seat.db"),
            ("KAFKA_GROUP_INSTANCE_ID", "seat-2"),
            (
                "SEAT_PAYMENT_URL",
                "http://127.0.0.1:8083,http://127.0.0.1:8183,http://127.0.0.1:8283,http://127.0.0.1:8383",
            ),
        ] {
            assert!(
                env.contains(&(expected.0, expected.1.to_owned())),
                "{expected:?} in {env:?}"
            );
        }
        let env = suite.env(seat, successor);
        assert!(env.contains(&("SEAT_HTTP_ADDR", "127.0.0.1:8381".to_owned())));
        // The successor's own static member id only on Apache Kafka (see `Suite::common`).
        assert!(env.contains(&("KAFKA_GROUP_INSTANCE_ID", "seat-2".to_owned())));
        let production = self::suite(&[
            ("STUDYCAFE_REPLICAS", "seat=2"),
            ("STUDYCAFE_STACK", "production"),
        ])
        .unwrap();
        assert!(
            production
                .env(seat, second)
                .contains(&("KAFKA_GROUP_INSTANCE_ID", "seat-2".to_owned()))
        );
        assert!(
            production
                .env(seat, successor)
                .contains(&("KAFKA_GROUP_INSTANCE_ID", "seat-2b".to_owned()))
        );
        let gateway = env_of(&suite, "gateway");
        assert!(gateway.contains(&(
            "GATEWAY_SEAT_URL",
            "http://127.0.0.1:8081,http://127.0.0.1:8181,http://127.0.0.1:8281,http://127.0.0.1:8381"
                .to_owned()
        )));
        // The gateway's successor binds the same port beside it.
        let gateway_spec = SERVICES.iter().find(|s| s.name == "gateway").unwrap();
        assert_eq!(
            suite.port_of(
                "gateway",
                Instance {
                    replica: 0,
                    side: 1
                }
            ),
            suite.port_of("gateway", Instance::FIRST)
        );
        assert_eq!(handover(gateway_spec), Handover::SamePort);
        assert_eq!(instance_name("seat", 0), "seat");
        assert_eq!(instance_name("seat", 1), "seat-2");
    }

    #[test]
    fn bad_replica_specs_are_configuration_errors() {
        for bad in [
            "seat",
            "seat=0",
            "seat=10",
            "nope=2",
            "broker=2",
            "gateway=2",
            "seat=two",
        ] {
            let error = suite(&[("STUDYCAFE_REPLICAS", bad)]).unwrap_err();
            assert!(error.0.contains("STUDYCAFE_REPLICAS"), "{bad}: {error}");
        }
        // Derived ports must stay in range and clear of the other services'.
        let high = suite(&[
            ("STUDYCAFE_REPLICAS", "seat=3"),
            ("STUDYCAFE_SEAT_PORT", "65300"),
        ]);
        assert!(high.unwrap_err().0.contains("65535"));
        let clash = suite(&[
            ("STUDYCAFE_REPLICAS", "seat=2"),
            ("STUDYCAFE_SEAT_PORT", "7984"),
        ]);
        assert!(clash.unwrap_err().0.contains("another service"));
        let mut suite = suite(&[("STUDYCAFE_REPLICAS", "seat=2")]).unwrap();
        suite.set_replicas("--replicas", "payment=3").unwrap();
        assert_eq!((suite.replicas("seat"), suite.replicas("payment")), (1, 3));
    }
}
