//! Every place that creates the topics outside the services (the engines script, compose, the
//! Kubernetes manifests) gives each the retention `topics::retention_ms` says, so a change here
//! cannot leave one of them behind.

use std::{collections::BTreeMap, fs, path::PathBuf};

use shared_events::topics;

fn read(relative: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    fs::read_to_string(root.join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The topics a shell loop `for topic in A B …; do … create "$topic" N … done` creates, each
/// with its N (compose writes `$$topic`).
fn shell_loops(text: &str) -> BTreeMap<String, u64> {
    let mut created = BTreeMap::new();
    for (_, rest) in text
        .match_indices("for topic in ")
        .map(|(i, _)| text.split_at(i + 13))
    {
        let (names, body) = rest.split_once("; do").expect("a loop body");
        let body = &body[..body.find("done").expect("the loop's end")];
        let retention: u64 = body
            .split_whitespace()
            .skip_while(|word| *word != "create")
            .nth(2)
            .and_then(|n| n.trim_end_matches(';').parse().ok())
            .unwrap_or_else(|| panic!("no `create \"$topic\" N` in {body:?}"));
        for name in names.split_whitespace().filter(|w| *w != "\\") {
            created.insert(name.to_owned(), retention);
        }
    }
    created
}

/// Strimzi `KafkaTopic` documents: each name with its `retention.ms`.
fn kafka_topics(text: &str) -> BTreeMap<String, u64> {
    text.split("\n---")
        .filter(|doc| doc.contains("kind: KafkaTopic"))
        .map(|doc| {
            let name = doc
                .lines()
                .find_map(|l| l.trim().strip_prefix("name: "))
                .expect("a name");
            let retention = doc
                .split("retention.ms: ")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name} has no retention.ms"));
            (name.to_owned(), retention)
        })
        .collect()
}

fn expected() -> BTreeMap<String, u64> {
    let groups = ["seat", "registration", "payment", "seat-view"];
    topics::ALL
        .iter()
        .map(|t| (*t).to_owned())
        .chain(groups.iter().map(|g| topics::dead_letter(g)))
        .map(|t| {
            let retention = topics::retention_ms(&t);
            (t, retention)
        })
        .collect()
}

#[test]
fn events_outlive_the_booking_horizon_and_dead_letters_keep_a_month() {
    assert_eq!(topics::retention_ms(topics::SEAT), 35 * 86_400_000);
    assert_eq!(
        topics::retention_ms(&topics::dead_letter("seat-view")),
        30 * 86_400_000
    );
}

#[test]
fn compose_and_the_manifests_create_every_topic_with_its_retention() {
    for (file, created) in [
        (
            "docker-compose.yml",
            shell_loops(&read("docker-compose.yml")),
        ),
        (
            "k8s/overlays/dev/engines.yaml",
            shell_loops(&read("k8s/overlays/dev/engines.yaml")),
        ),
        (
            "k8s/overlays/production/kafka.yaml",
            kafka_topics(&read("k8s/overlays/production/kafka.yaml")),
        ),
    ] {
        assert_eq!(created, expected(), "{file}");
    }
}

#[test]
fn the_engines_script_creates_the_event_topics_with_their_retention() {
    let script = read("scripts/engines/kafka");
    let declared = script
        .lines()
        .find_map(|l| l.strip_prefix("RETENTION_MS="))
        .expect("RETENTION_MS=");
    assert_eq!(declared, topics::EVENT_RETENTION_MS.to_string());
    assert!(script.contains("--config retention.ms=\"$RETENTION_MS\""));
    for topic in topics::ALL {
        assert!(script.contains(topic), "{topic}");
    }
}

#[test]
fn the_parsers_see_a_topic_left_behind() {
    let loops = "for topic in a.v1 \\\n b.v1; do\n create \"$topic\" 7\ndone\n\
                 for topic in c.v1; do create \"$$topic\" 9; done";
    let found = shell_loops(loops);
    assert_eq!(
        found,
        BTreeMap::from([("a.v1".into(), 7), ("b.v1".into(), 7), ("c.v1".into(), 9)])
    );
    let manifests = "kind: KafkaTopic\nmetadata:\n  name: x.v1\nspec:\n  config: { retention.ms: 5 }\n---\nkind: KafkaTopic\nmetadata:\n  name: y.v1\nspec:\n  config: { min.insync.replicas: 2, retention.ms: 604800000 }";
    assert_eq!(
        kafka_topics(manifests),
        BTreeMap::from([("x.v1".into(), 5), ("y.v1".into(), 604_800_000)])
    );
}
