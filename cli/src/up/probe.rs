//! Readiness and liveness probes of a service process, as a kubelet makes them.

use std::time::Duration;

use super::{
    present::human,
    supervisor::{READY_TIMEOUT, Service},
};
use crate::{launch, services::Readiness};

impl Service {
    /// Whether it became ready within [`READY_TIMEOUT`].
    pub(super) async fn ready(&self) -> bool {
        self.ready_on(self.port(), None).await
    }

    /// Whether the process on `port` became ready within [`READY_TIMEOUT`]. With `pid`, also
    /// that this very process listens there: a successor sharing its port (the gateway)
    /// would otherwise pass on its predecessor's answers.
    pub(super) async fn ready_on(&self, port: u16, pid: Option<u32>) -> bool {
        let probe = async {
            loop {
                let own = pid.is_none_or(|pid| launch::listens(pid, port));
                if own && self.probe(port).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(READY_TIMEOUT, probe).await.is_ok()
    }

    pub(super) async fn probe(&self, port: u16) -> bool {
        match self.spec.readiness {
            Readiness::TcpConnect => {
                let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
                matches!(
                    tokio::time::timeout(Duration::from_secs(1), connect).await,
                    Ok(Ok(_))
                )
            }
            Readiness::HttpOk(path) => self
                .http
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await
                .is_ok_and(|response| response.status() == reqwest::StatusCode::OK),
        }
    }

    /// One liveness probe: `Err(why)` when it failed. A service without an HTTP health
    /// endpoint (the broker) is probed by connecting, which a hung process still passes: the
    /// kernel completes the handshake.
    pub(super) async fn live(&self) -> Result<(), String> {
        let timeout = self.liveness.timeout;
        let Readiness::HttpOk(_) = self.spec.readiness else {
            let connect = tokio::net::TcpStream::connect(("127.0.0.1", self.port()));
            return match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("cannot connect: {e}")),
                Err(_) => Err(format!("no connection within {}", human(timeout))),
            };
        };
        let probe = async {
            let response = self
                .http
                .get(format!("http://127.0.0.1:{}/health/live", self.port()))
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        format!("no answer within {}", human(timeout))
                    } else {
                        format!("no answer: {e}")
                    }
                })?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            // The service names what is stalled in the problem's detail.
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let detail = body["detail"].as_str().unwrap_or_default();
            Err(format!("/health/live answered {status} {detail}")
                .trim_end()
                .to_owned())
        };
        // Reading the body is bounded too: a process may stop between headers and body.
        tokio::time::timeout(timeout, probe)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}", human(timeout))))
    }
}
