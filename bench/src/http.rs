//! The scenarios through HTTP: reserving through the gateway, and a plain read.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use chrono::{DateTime, DurationRound as _, SecondsFormat, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::load::{Op, OpFuture, Outcome};

pub fn client(connections: usize, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(timeout)
        .build()?)
}

pub fn transport_error(e: &reqwest::Error) -> Outcome {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    Outcome::Err(kind.to_owned())
}

/// `GET url`, 200 expected: the gateway's own overhead when compared with the same read
/// straight from the service.
pub fn read_op(client: reqwest::Client, url: String) -> Op {
    let url: Arc<str> = url.into();
    Arc::new(move |_| -> OpFuture {
        let (client, url) = (client.clone(), url.clone());
        Box::pin(async move {
            match client.get(&*url).send().await {
                Ok(response) => {
                    let status = response.status();
                    // Read the whole body: a read is not done until its bytes arrived.
                    let _ = response.bytes().await;
                    let label = status.as_u16().to_string();
                    if status == reqwest::StatusCode::OK {
                        Outcome::Ok(label)
                    } else {
                        Outcome::Err(label)
                    }
                }
                Err(e) => transport_error(&e),
            }
        })
    })
}

#[derive(Debug, Deserialize)]
struct Seat {
    id: String,
    enabled: bool,
}

#[derive(Debug, Clone)]
pub struct ReserveSettings {
    pub gateway: String,
    pub customers: usize,
    pub conflicts: bool,
    pub cursor: Option<PathBuf>,
    pub horizon_days: i64,
    pub payment_token: String,
}

/// Where the windows of a run go: request k books seat k mod S for the hour starting
/// `first + k div S`, so no two requests of a run ask for overlapping windows.
#[derive(Debug)]
pub struct Reserve {
    settings: ReserveSettings,
    seats: Vec<String>,
    tokens: Vec<String>,
    first: DateTime<Utc>,
    /// Highest sequence number used + 1, for the cursor.
    used: Arc<AtomicU64>,
}

impl Reserve {
    /// Finds the seats and signs up the customers.
    pub async fn prepare(
        client: &reqwest::Client,
        settings: ReserveSettings,
    ) -> anyhow::Result<Self> {
        let gw = settings.gateway.trim_end_matches('/').to_owned();
        let seats: Vec<Seat> = client
            .get(format!("{gw}/api/seats"))
            .send()
            .await
            .context("GET /api/seats")?
            .error_for_status()?
            .json()
            .await?;
        let seats: Vec<String> = seats
            .into_iter()
            .filter(|s| s.enabled)
            .map(|s| s.id)
            .collect();
        if seats.is_empty() {
            bail!("the catalogue has no enabled seat");
        }
        let mut tokens = Vec::with_capacity(settings.customers);
        // Sign-ups hash a password (Argon2): a few at a time, so they do not starve each other.
        let mut remaining = settings.customers;
        while remaining > 0 {
            let mut signups = tokio::task::JoinSet::new();
            for _ in 0..remaining.min(4) {
                let (client, gw) = (client.clone(), gw.clone());
                signups.spawn(async move { sign_up(&client, &gw).await });
            }
            remaining -= remaining.min(4);
            while let Some(token) = signups.join_next().await {
                tokens.push(token??);
            }
        }
        let now = Utc::now();
        let earliest = now.duration_trunc(TimeDelta::hours(1))? + TimeDelta::hours(2);
        let first = match &settings.cursor {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path)?;
                let saved = DateTime::parse_from_rfc3339(text.trim())
                    .with_context(|| format!("cursor {}", path.display()))?
                    .with_timezone(&Utc);
                saved.max(earliest)
            }
            _ => earliest,
        };
        eprintln!(
            "{} seats, {} customers; windows from {}",
            seats.len(),
            tokens.len(),
            first.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        Ok(Self {
            settings: ReserveSettings {
                gateway: gw,
                ..settings
            },
            seats,
            tokens,
            first,
            used: Arc::new(AtomicU64::new(0)),
        })
    }

    fn window(&self, k: u64) -> (usize, DateTime<Utc>) {
        if self.settings.conflicts {
            return (0, self.first);
        }
        let seats = self.seats.len() as u64;
        // Past the booking horizon seat would refuse (422): wrap to the first hour. By then
        // those windows are usually free again (unpaid holds expire), and a conflict would
        // show as a 409 in the report rather than go unnoticed.
        let hours_left = (Utc::now() + TimeDelta::days(self.settings.horizon_days) - self.first)
            .num_hours()
            .max(2) as u64
            - 1;
        let hour = (k / seats) % hours_left;
        (
            (k % seats) as usize,
            self.first + TimeDelta::hours(hour as i64),
        )
    }

    /// Sends request `k` (its seat, window and customer) and returns the answer unread.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        k: u64,
    ) -> reqwest::Result<reqwest::Response> {
        self.used.fetch_max(k + 1, Ordering::Relaxed);
        let (seat, starts_at) = self.window(k);
        let token = &self.tokens[k as usize % self.tokens.len()];
        let body = json!({
            "seatId": self.seats[seat],
            "startsAt": starts_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "hours": 1,
            "paymentToken": self.settings.payment_token,
        });
        client
            .post(format!("{}/api/reservations", self.settings.gateway))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
    }

    pub fn op(self: Arc<Self>, client: reqwest::Client) -> Op {
        Arc::new(move |k| -> OpFuture {
            let (this, client) = (self.clone(), client.clone());
            Box::pin(async move {
                match this.send(&client, k).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        let ok = status == 202 || (this.settings.conflicts && status == 409);
                        if ok {
                            Outcome::Ok(status.to_string())
                        } else {
                            Outcome::Err(status.to_string())
                        }
                    }
                    Err(e) => transport_error(&e),
                }
            })
        })
    }

    /// Saves where the next run's windows may start (after every hour this run used).
    pub fn save_cursor(&self) -> anyhow::Result<()> {
        let Some(path) = &self.settings.cursor else {
            return Ok(());
        };
        if self.settings.conflicts {
            return Ok(());
        }
        let used = self.used.load(Ordering::Relaxed);
        let hours = used.div_ceil(self.seats.len() as u64) as i64;
        let next = self.first + TimeDelta::hours(hours);
        std::fs::write(path, next.to_rfc3339_opts(SecondsFormat::Secs, true))
            .with_context(|| format!("writing cursor {}", path.display()))
    }
}

async fn sign_up(client: &reqwest::Client, gw: &str) -> anyhow::Result<String> {
    let username = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let password = format!("{username}-password");
    let response = client
        .post(format!("{gw}/api/users"))
        .json(&json!({"username": username, "password": password, "displayName": "bench"}))
        .send()
        .await
        .context("sign-up")?;
    let status = response.status();
    if status != reqwest::StatusCode::CREATED {
        bail!(
            "sign-up of {username}: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }
    password_grant(client, gw, &username, &password).await
}

/// A token for `user` by the password grant, through the gateway.
pub async fn password_grant(
    client: &reqwest::Client,
    gw: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let response = client
        .post(format!("{gw}/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .context("password grant")?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    match body["access_token"].as_str() {
        Some(token) if status.is_success() => Ok(token.to_owned()),
        _ => bail!("password grant for {user}: {status} {body}"),
    }
}
