//! What the operators' alerts and dashboard read (`k8s/base/monitoring/`) is what the services
//! really export: after real sagas on the whole stack, every metric name in the
//! PrometheusRule's expressions and the Grafana dashboard's queries is a series on some
//! service's `/metrics`, and the gauges the alerts watch settle where they must (no consumer
//! lag, no outbox backlog) once the work is done.
//!
//! Run with `--nocapture` to see each service's peak resident memory after the run (VmHWM):
//! the figures the Deployments' memory requests and limits in `k8s/base/services/` come from.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use studycafe_e2e::{
    WAIT,
    stack::{Stack, StackOptions, Window},
};
use studycafe_testkit::within;

/// Series made by Prometheus itself or by kube-state-metrics, not by a studycafe service.
fn external(name: &str) -> bool {
    name == "up" || name.starts_with("kube_")
}

const RULES: &str = include_str!("../../k8s/base/monitoring/prometheus-rule.yaml");
const DASHBOARD: &str = include_str!("../../k8s/base/monitoring/studycafe-dashboard.json");

/// Every `expr:` of the PrometheusRule (one line each, as the file asks).
fn rule_expressions() -> Vec<String> {
    let expressions: Vec<String> = RULES
        .lines()
        .filter_map(|line| line.trim().strip_prefix("expr:"))
        .map(|expr| expr.trim().to_owned())
        .collect();
    let alerts = RULES
        .lines()
        .filter(|l| l.trim().starts_with("- alert:"))
        .count();
    assert_eq!(
        expressions.len(),
        alerts,
        "one single-line expr per alert in prometheus-rule.yaml"
    );
    assert!(
        expressions
            .iter()
            .all(|e| !e.is_empty() && !e.starts_with(['|', '>'])),
        "every expr on its own line: {expressions:?}"
    );
    expressions
}

/// Every `expr` of the dashboard's panels.
fn dashboard_expressions() -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut out = Vec::new();
    walk(&dashboard, &mut out);
    out
}

/// The metric names a PromQL expression reads: identifiers that are not functions,
/// aggregations, keywords, label names (in `{…}`, `by (…)`, `on (…)`, …), strings or durations.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Aggregation operators may stand before their `by (…)`: `sum by (job) (…)`.
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    const KEYWORDS: [&str; 11] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
    ];
    // Drop strings, label matchers and ranges: what remains names metrics, functions and
    // keywords.
    let mut plain = String::new();
    let mut depth_braces = 0;
    let mut depth_brackets = 0;
    let mut quote: Option<char> = None;
    for c in expr.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if depth_braces == 0 => quote = Some(c),
            (None, '{') => depth_braces += 1,
            (None, '}') => depth_braces -= 1,
            (None, '[') => depth_brackets += 1,
            (None, ']') => depth_brackets -= 1,
            (None, c) if depth_braces == 0 && depth_brackets == 0 => plain.push(c),
            _ => {}
        }
    }
    let tokens: Vec<(String, char)> = {
        let mut tokens = Vec::new();
        let chars: Vec<char> = plain.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_ascii_alphabetic() || c == '_' || c == ':' {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let next = chars[i..]
                    .iter()
                    .copied()
                    .find(|c| !c.is_whitespace())
                    .unwrap_or(' ');
                tokens.push((chars[start..i].iter().collect(), next));
            } else if c.is_ascii_digit() || c == '.' {
                // A number, possibly with a unit or exponent (0.99, 5m, 1e3): not a name.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
        tokens
    };
    let mut names = BTreeSet::new();
    let mut skip_group = false;
    for (token, next) in tokens {
        if skip_group {
            // The label list after `by`, `on`, …: closed by `)`, which tokens do not show;
            // label lists hold only identifiers followed by `,` or `)`.
            skip_group = next == ',';
            continue;
        }
        if KEYWORDS.contains(&token.as_str()) {
            skip_group = next == '(' && !matches!(token.as_str(), "and" | "or" | "unless");
            continue;
        }
        if next == '(' || AGGREGATIONS.contains(&token.as_str()) {
            continue; // a function or an aggregation
        }
        names.insert(token);
    }
    names
}

/// Series names on a `/metrics` page (`name{labels} value` or `name value`).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Sum of every `name{…}` series of a `/metrics` page.
fn total(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !rest.starts_with(['{', ' ']) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        found = Some(found.unwrap_or(0.0) + value);
    }
    found
}

#[test]
fn the_name_extraction_sees_metrics_and_nothing_else() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (namespace, job, le) (rate(http_request_duration_seconds_bucket{job!="gateway", route!~".*/stream"}[5m]))) > 0.5 and on (job) delta(outbox_pending_messages[15m:1m]) > 0"#,
    );
    assert_eq!(
        names,
        BTreeSet::from([
            "http_request_duration_seconds_bucket".to_owned(),
            "outbox_pending_messages".to_owned()
        ])
    );
    let all: BTreeSet<String> = rule_expressions()
        .iter()
        .chain(dashboard_expressions().iter())
        .flat_map(|e| metric_names(e))
        .collect();
    // The rules and the dashboard name what the issue asks them to watch.
    for wanted in [
        "consumer_lag_messages",
        "consumer_events_total",
        "circuit_breaker_state",
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "outbox_pending_messages",
        "kube_pod_container_status_restarts_total",
        "consumer_event_age_seconds_bucket",
    ] {
        assert!(all.contains(wanted), "{wanted} in {all:?}");
    }
}

struct Pages(BTreeMap<&'static str, String>);

impl Pages {
    async fn read(stack: &Stack) -> Self {
        let mut pages = BTreeMap::new();
        for (service, base) in [
            ("identity", &stack.identity_url),
            ("payment", &stack.payment_url),
            ("seat", &stack.seat_url),
            ("registration", &stack.registration_url),
            ("seat-view", &stack.seat_view_url),
            ("gateway", &stack.url),
        ] {
            let text = stack
                .http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .expect("metrics answer")
                .text()
                .await
                .expect("metrics text");
            pages.insert(service, text);
        }
        Self(pages)
    }

    fn names(&self) -> BTreeSet<String> {
        self.0.values().flat_map(|t| exported(t)).collect()
    }

    fn total(&self, name: &str) -> Option<f64> {
        self.0
            .values()
            .filter_map(|t| total(t, name))
            .reduce(|a, b| a + b)
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_dashboard_read_is_exported_after_a_saga() {
    let referenced: BTreeSet<String> = rule_expressions()
        .iter()
        .chain(dashboard_expressions().iter())
        .flat_map(|e| metric_names(e))
        .filter(|name| !external(name))
        .collect();

    let stack = Stack::start(StackOptions::default()).await;
    stack.auto_confirm(true).await;
    let customer = stack.customer("metrics").await;
    // Sagas to the end, one declined payment and one cancellation with its refund: every
    // step's counters and every consumer's event age get series.
    let mut registered = Vec::new();
    for (i, seat) in ["A-01", "A-02", "A-03", "A-04", "A-05", "A-06"]
        .iter()
        .enumerate()
    {
        let window = Window::ahead(2 + i as i64, 1);
        registered.push(
            stack
                .reserve_ok(&customer, seat, &window, "tok_approve")
                .await,
        );
    }
    let declined = stack
        .reserve_ok(&customer, "B-01", &Window::ahead(3, 1), "tok_decline")
        .await;
    for id in &registered {
        stack.wait_for_status(id, "REGISTERED").await;
    }
    stack.wait_for_status(&declined, "PAYMENT_FAILED").await;
    let (status, body) = stack
        .send(
            reqwest::Method::DELETE,
            Some(&customer),
            &format!("/api/reservations/{}", registered[0]),
            None,
        )
        .await;
    assert_eq!(status, 202, "cancel: {body}");
    stack.wait_for_status(&registered[0], "CANCELLED").await;
    // The board through the gateway (seat-view's routes and the gateway's upstream series).
    stack
        .wait_for_board("A-02", Window::ahead(3, 1).during(), "OCCUPIED")
        .await;

    // Every referenced name is exported; the lag gauges appear with the first sample (every
    // 10 s), the rest at once.
    let exported = within(WAIT, || async {
        let pages = Pages::read(&stack).await;
        referenced.is_subset(&pages.names()).then_some(pages)
    })
    .await;
    let pages = match exported {
        Some(pages) => pages,
        None => {
            let names = Pages::read(&stack).await.names();
            let missing: Vec<&String> = referenced.difference(&names).collect();
            panic!("not exported by any service: {missing:?}\n{}", stack.logs());
        }
    };

    // And they mean what the alerts assume: when the work is done, nothing lags, nothing
    // waits in an outbox, nothing was dead-lettered.
    stack
        .eventually(
            "no consumer lag and no outbox backlog once the sagas are done",
            || async {
                let pages = Pages::read(&stack).await;
                let lag = pages.total("consumer_lag_messages")?;
                let backlog = pages.total("outbox_pending_messages")?;
                (lag == 0.0 && backlog == 0.0).then_some(())
            },
        )
        .await;
    let dead = pages
        .0
        .values()
        .flat_map(|t| t.lines())
        .filter(|l| l.starts_with("consumer_events_total{") && l.contains("dead_lettered"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert_eq!(dead, 0.0, "nothing dead-lettered in a clean run");

    // Peak resident memory, for sizing the Deployments (debug builds: release is smaller).
    for process in [
        &stack.identity,
        &stack.payment,
        &stack.seat,
        &stack.registrations[0],
        &stack.seat_view,
        &stack.gateway,
    ] {
        if let Some(kib) = process.pid().and_then(peak_rss_kib) {
            eprintln!("peak RSS {:<14} {:>6} KiB", process.name(), kib);
        }
    }
}
