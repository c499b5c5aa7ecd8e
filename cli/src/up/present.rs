//! What `up` prints: the summary once the suite is up, and how durations and stops read.

use std::{io::Write as _, time::Duration};

use super::supervisor::Stopped;
use crate::{
    services::{self, DEMO_ADMIN, Suite},
    web_app,
};

/// The widest process name, for aligned columns.
pub(super) fn name_width(suite: &Suite) -> usize {
    suite
        .services()
        .map(|spec| services::instance_name(spec.name, suite.replicas(spec.name) - 1).len())
        .max()
        .unwrap_or(0)
}

pub(super) fn summary(suite: &Suite, data_dir_flag: bool, web: &web_app::WebApp) {
    let width = name_width(suite).max(7);
    println!();
    println!("studycafe is up:");
    println!(
        "  {:<width$}  {}",
        "web",
        web_app::summary(web, suite.port("gateway"))
    );
    for spec in suite.services() {
        for instance in suite.instances(spec) {
            println!(
                "  {:<width$}  {}",
                services::instance_name(spec.name, instance.replica),
                (spec.endpoint)(suite.port_of(spec.name, instance))
            );
        }
        if spec.name == "seat" {
            println!(
                "  {:<width$}  127.0.0.1:{} (gRPC studycafe.seat.v1, health, reflection; `studycafe seat-grpc`)",
                "", suite.seat_grpc_port
            );
        }
    }
    if let Some(engines) = &suite.engines {
        println!(
            "  {:<width$}  Kafka {}, PostgreSQL {}, MariaDB {}, Redis {}",
            "engines",
            engines.kafka,
            redact(&engines.postgres),
            redact(&engines.mysql),
            redact(&engines.redis)
        );
    }
    println!("  {:<width$}  {}", "data", suite.data.root().display());
    println!("  {:<width$}  {}", "logs", suite.data.logs().display());
    let data_arg = if data_dir_flag {
        format!(
            " --data-dir {}",
            shell_quote(&suite.data.root().display().to_string())
        )
    } else {
        String::new()
    };
    let gateway = suite.port("gateway");
    println!();
    println!(
        "accounts: customers alice / alice-studies and bob / bob-studies, admin {} / {}",
        DEMO_ADMIN.0, DEMO_ADMIN.1
    );
    println!(
        "get a token:  curl -s -d grant_type=password -d username=alice -d password=alice-studies \\\n    http://127.0.0.1:{gateway}/auth/token"
    );
    println!(
        "  the seat board:  curl -s http://127.0.0.1:{gateway}/api/board  (a dev token without a password: studycafe token --user alice{data_arg})"
    );
    println!(
        "replace a service's processes one at a time, without downtime:  studycafe rollout SERVICE{data_arg}"
    );
    println!("press Ctrl-C to stop");
}

/// A URL without its password, for printing.
pub(super) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub(super) fn flush() {
    let _ = std::io::stdout().flush();
}

/// Quotes `text` for a POSIX shell when it needs quoting, for copy-pasteable hints.
pub(super) fn shell_quote(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c));
    if plain && !text.is_empty() {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// ` (restarted N times)`, or nothing.
pub(super) fn restarted(restarts: u32) -> String {
    match restarts {
        0 => String::new(),
        1 => " (restarted once)".to_owned(),
        n => format!(" (restarted {n} times)"),
    }
}

pub(super) fn describe(result: Result<Stopped, tokio::task::JoinError>) -> String {
    match result {
        Ok(Stopped::NotRunning) => "was not running".to_owned(),
        Ok(Stopped::Exited {
            status,
            after,
            killed,
        }) => {
            let mut text = if killed {
                format!("killed after {}", human(after))
            } else {
                format!("stopped in {}", human(after))
            };
            if !killed && !status.success() {
                text.push_str(&format!(" ({status})"));
            }
            text
        }
        Err(e) => format!("its supervisor failed: {e}"),
    }
}

/// `0.4s`, `12.0s`, `3m05s`.
pub(super) fn human(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(420)), "0.4s");
        assert_eq!(human(Duration::from_secs(60)), "1m00s");
        assert_eq!(human(Duration::from_secs(185)), "3m05s");
    }

    #[test]
    fn printed_urls_hide_passwords() {
        assert_eq!(
            redact("postgres://studycafe:secret@127.0.0.1:15432"),
            "postgres://studycafe:***@127.0.0.1:15432"
        );
        assert_eq!(redact("redis://127.0.0.1:16379"), "redis://127.0.0.1:16379");
    }

    #[test]
    fn hints_are_copy_pasteable() {
        assert_eq!(shell_quote("/tmp/sc-up"), "/tmp/sc-up");
        assert_eq!(shell_quote("/tmp/my data"), "'/tmp/my data'");
        assert_eq!(shell_quote("/tmp/it's"), r"'/tmp/it'\''s'");
    }
}
