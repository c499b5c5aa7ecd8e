//! `studycafe up` driven as a new user runs it: one command, its own free ports and data
//! directory, the demo accounts.

use std::{collections::HashMap, path::Path, time::Duration};

use serde_json::Value;
use studycafe_testkit::{ServiceProcess, executable, free_port, within};

/// The variables that give `up` its own ports (each set to a free one).
const PORT_VARS: [&str; 9] = [
    "STUDYCAFE_BROKER_PORT",
    "STUDYCAFE_IDENTITY_PORT",
    "STUDYCAFE_PAYMENT_PORT",
    "STUDYCAFE_SEAT_PORT",
    "STUDYCAFE_REGISTRATION_PORT",
    "STUDYCAFE_SEAT_VIEW_PORT",
    "STUDYCAFE_GATEWAY_PORT",
    "STUDYCAFE_NOTIFICATION_PORT",
    "STUDYCAFE_SEAT_GRPC_PORT",
];

/// The environment of an `up` as a new user runs it: a data directory, free ports, and what
/// the user's environment tells the Python tools (`up` may have to create the notification
/// service's virtual environment): home, certificate authorities, proxies and package index.
fn environment(data: &Path) -> HashMap<String, String> {
    let mut env = HashMap::from([("STUDYCAFE_DATA_DIR".to_owned(), data.display().to_string())]);
    for var in PORT_VARS {
        env.insert(var.to_owned(), free_port().to_string());
    }
    for (var, value) in std::env::vars() {
        let for_python_tools = ["HOME", "SSL_CERT_FILE", "SSL_CERT_DIR"].contains(&var.as_str())
            || var.to_ascii_lowercase().ends_with("_proxy")
            || var.starts_with("UV_")
            || var.starts_with("PIP_");
        if for_python_tools {
            env.insert(var, value);
        }
    }
    env
}

/// A running `studycafe up`.
#[derive(Debug)]
pub struct Up {
    pub process: ServiceProcess,
    pub env: HashMap<String, String>,
    data: tempfile::TempDir,
    pub gateway: String,
    pub seat: String,
    pub brokers: String,
}

impl Up {
    /// `up` with the default settings.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// `up` with `settings` added to a new user's environment.
    pub fn start_with(settings: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut env = environment(data.path());
        for (var, value) in settings {
            env.insert((*var).to_owned(), (*value).to_owned());
        }
        let port = |var: &str| env[var].clone();
        let (gateway, seat, brokers) = (
            format!("http://127.0.0.1:{}", port("STUDYCAFE_GATEWAY_PORT")),
            format!("http://127.0.0.1:{}", port("STUDYCAFE_SEAT_PORT")),
            format!("127.0.0.1:{}", port("STUDYCAFE_BROKER_PORT")),
        );
        let process = Self::spawn(&env, data.path());
        Self {
            process,
            env,
            data,
            gateway,
            seat,
            brokers,
        }
    }

    fn spawn(env: &HashMap<String, String>, dir: &Path) -> ServiceProcess {
        ServiceProcess::start_with_args("up", executable("studycafe"), &["up"], env.clone(), dir)
    }

    /// `up` again on the same data directory and ports.
    pub fn restart(&mut self) {
        self.process = Self::spawn(&self.env, self.data.path());
    }

    /// Until the gateway, the last service `up` starts, is ready, for at most `limit`. (Not
    /// `up`'s log: a restart appends to the same file.)
    pub async fn wait_ready(&self, limit: Duration) {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("{}/health/ready", self.gateway);
        let ready = within(limit, || async {
            let response = http.get(&url).send().await.ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "the suite never became ready:\n{}",
            self.process.log_tail(40)
        );
    }

    /// A demo account's token from identity, through the gateway.
    pub async fn token(&self, http: &reqwest::Client, user: &str, password: &str) -> String {
        let response = http
            .post(format!("{}/auth/token", self.gateway))
            .form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ])
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(response.status(), 200, "sign-in of {user}");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Reservation `id`'s status as its customer sees it through the gateway.
    pub async fn status(&self, http: &reqwest::Client, token: &str, id: &str) -> Option<String> {
        let response = http
            .get(format!("{}/api/reservations/{id}", self.gateway))
            .bearer_auth(token)
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        body["status"].as_str().map(str::to_owned)
    }

    /// `studycafe rollout SERVICE` against this `up`, as from another terminal: whether it
    /// succeeded, and what it printed.
    pub async fn rollout(&self, service: &str) -> (bool, String) {
        let output = tokio::process::Command::new(executable("studycafe"))
            .args(["rollout", service])
            .env("STUDYCAFE_DATA_DIR", self.data.path())
            .output()
            .await
            .expect("studycafe rollout runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// The pid of `service` (or of a replica: `seat-2`) as `up` recorded it in its data
    /// directory.
    pub fn pid_of(&self, service: &str) -> Option<i32> {
        let pids = self.data.path().join("pids");
        let text = std::fs::read_to_string(pids.join(format!("{service}.pid"))).ok()?;
        text.lines().next()?.trim().parse().ok()
    }
}
