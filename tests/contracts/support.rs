//! What both kinds of contract test share: where the pacts live and how a verification run is
//! judged.

use std::{path::PathBuf, sync::Arc};

use pact_verifier::{
    FilterInfo, PactSource, ProviderInfo, ProviderTransport, VerificationOptions,
    callback_executors::{ProviderStateExecutor, RequestFilterExecutor},
    verify_provider_async,
};
use tokio::sync::RwLock;

/// Consumers write pact files while holding it for writing, providers read them holding it
/// for reading: tests of one binary run in parallel.
pub static PACTS: RwLock<()> = RwLock::const_new(());

pub fn pacts_dir() -> PathBuf {
    studycafe_e2e::stack::repository().join("tests/contracts/pacts")
}

pub fn pact_file(consumer: &str, provider: &str) -> PathBuf {
    pacts_dir().join(format!("{consumer}-{provider}.json"))
}

/// Every pact file naming `provider`.
pub fn pacts_of(provider: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(pacts_dir())
        .expect("tests/contracts/pacts")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(&format!("-{provider}.json")))
        })
        .collect();
    files.sort();
    files
}

/// The pact files naming `provider` whose interactions are messages (not HTTP).
pub fn message_pacts_of(provider: &str) -> Vec<PathBuf> {
    pacts_of(provider)
        .into_iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let pact: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            pact["interactions"]
                .as_array()
                .is_some_and(|all| all.iter().all(|i| i["type"] == "Asynchronous/Messages"))
        })
        .collect()
}

/// Verifies `files` against the provider at `base_url`; Ok(()) when every interaction
/// matched, Err(the verifier's report) otherwise.
pub async fn verify<F: RequestFilterExecutor, S: ProviderStateExecutor>(
    provider: &str,
    port: u16,
    files: Vec<PathBuf>,
    filter: Option<Arc<F>>,
    states: Arc<S>,
) -> Result<(), String> {
    assert!(!files.is_empty(), "no pact names {provider}");
    let _reading = PACTS.read().await;
    // HTTP interactions go to the `http` transport; message interactions are fetched from
    // the `message` one (a POST naming the message).
    let transport = |kind: &str| ProviderTransport {
        transport: kind.to_owned(),
        port: Some(port),
        path: None,
        scheme: Some("http".to_owned()),
    };
    #[allow(deprecated)]
    let info = ProviderInfo {
        name: provider.to_owned(),
        host: "127.0.0.1".to_owned(),
        port: Some(port),
        transports: vec![transport("http"), transport("message")],
        ..ProviderInfo::default()
    };
    let sources = files
        .iter()
        .map(|f| PactSource::File(f.display().to_string()))
        .collect();
    let options = VerificationOptions {
        request_filter: filter,
        coloured_output: false,
        request_timeout: 10_000,
        ..VerificationOptions::default()
    };
    let outcome = verify_provider_async(
        info,
        sources,
        FilterInfo::None,
        vec![],
        &options,
        None,
        &states,
        None,
    )
    .await
    .map_err(|e| format!("the verifier failed to run: {e:#}"))?;
    let checked = outcome.interaction_results.len();
    if outcome.result && outcome.errors.is_empty() && checked > 0 {
        Ok(())
    } else {
        Err(format!(
            "{checked} interactions checked, {} failed:\n{}\n{}",
            outcome.errors.len(),
            outcome
                .errors
                .iter()
                .map(|(what, mismatch)| format!("- {what}: {mismatch:?}"))
                .collect::<Vec<_>>()
                .join("\n"),
            outcome.output.join("\n")
        ))
    }
}
