//! The embedded broker's group coordinator keeps a group able to consume whatever its members
//! do: die in a formed group or mid-rebalance, or come back under another member id. These are
//! the defects of Tansu 0.6.0 patched in `vendor/tansu-broker` (see its PATCH.md); each test
//! fails on the unpatched crate.
//!
//! They drive the coordinator the broker runs (`Controller` on the SQLite storage of
//! `broker.db`) through Kafka's own requests, as a consumer's client would send them: join,
//! sync, heartbeat. Members use static membership (`group.instance.id`) like every service of
//! the suite. Tansu holds every static join for 3 s (to gather the group), so a
//! session here is 4 s and a test takes 10 to 20 s.

use std::time::Duration;

use bytes::Bytes;
use tansu_broker::coordinator::group::{Coordinator, administrator::Controller};
use tansu_sans_io::{
    Body, ErrorCode, join_group_request::JoinGroupRequestProtocol,
    sync_group_request::SyncGroupRequestAssignment,
};
use tansu_storage::{BrokerRegistrationRequest, Storage as _, StorageContainer};
use url::Url;

const GROUP: &str = "seat-view";
const SESSION_MS: i32 = 4_000;
/// Longer than a session: a member that said nothing for this long has expired.
const LAPSE: Duration = Duration::from_millis(5_000);

struct Coordinated {
    controller: Controller<StorageContainer>,
    _dir: tempfile::TempDir,
}

/// What a join answered: the member's id, the generation, the leader, and the members the
/// leader must assign partitions to (empty for a follower).
#[derive(Debug)]
struct Joined {
    member_id: String,
    generation: i32,
    leader: String,
    members: Vec<String>,
}

impl Coordinated {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = StorageContainer::builder()
            .cluster_id("studycafe")
            .node_id(111)
            .advertised_listener(Url::parse("tcp://127.0.0.1:9092").expect("url"))
            .schema_registry(None)
            // Tansu joins a `sqlite://` path to the working directory; with an absolute path
            // after the authority's `//`, the join yields that absolute path.
            .storage(
                Url::parse(&format!("sqlite:///{}/broker.db", dir.path().display())).expect("url"),
            )
            .build()
            .await
            .expect("storage");
        // The broker registers itself at start-up; groups belong to its cluster.
        storage
            .register_broker(BrokerRegistrationRequest {
                broker_id: 111,
                cluster_id: "studycafe".into(),
                incarnation_id: uuid::Uuid::now_v7(),
                rack: None,
            })
            .await
            .expect("register the broker");
        let controller = Controller::with_storage(storage).expect("coordinator");
        Self {
            controller,
            _dir: dir,
        }
    }

    /// A static member's join; `member_id` is empty for a client that has none yet.
    async fn join(&mut self, instance: &str, member_id: &str) -> Joined {
        let protocols = [JoinGroupRequestProtocol::default()
            .name("range".into())
            .metadata(Bytes::from_static(b"subscription: seat"))];
        let body = self
            .controller
            .join(
                Some(instance),
                GROUP,
                SESSION_MS,
                Some(SESSION_MS),
                member_id,
                Some(instance),
                "consumer",
                Some(&protocols[..]),
                None,
            )
            .await
            .expect("join");
        let Body::JoinGroupResponse(response) = body else {
            panic!("join answered {body:?}");
        };
        assert_eq!(
            i16::from(ErrorCode::None),
            response.error_code,
            "join of {instance}: {response:?}"
        );
        Joined {
            member_id: response.member_id,
            generation: response.generation_id,
            leader: response.leader,
            members: response
                .members
                .unwrap_or_default()
                .into_iter()
                .map(|member| member.member_id)
                .collect(),
        }
    }

    /// A sync: the leader hands out `assignments` (member, partitions); a follower sends none.
    /// Answers the error code and this member's assignment.
    async fn sync(
        &mut self,
        joined: &Joined,
        instance: &str,
        assignments: &[(&str, &'static [u8])],
    ) -> (ErrorCode, Bytes) {
        let assignments: Vec<_> = assignments
            .iter()
            .map(|(member, assignment)| {
                SyncGroupRequestAssignment::default()
                    .member_id((*member).to_owned())
                    .assignment(Bytes::from_static(assignment))
            })
            .collect();
        let body = self
            .controller
            .sync(
                GROUP,
                joined.generation,
                &joined.member_id,
                Some(instance),
                Some("consumer"),
                Some("range"),
                Some(&assignments[..]),
            )
            .await
            .expect("sync");
        let Body::SyncGroupResponse(response) = body else {
            panic!("sync answered {body:?}");
        };
        (
            ErrorCode::try_from(response.error_code).expect("error code"),
            response.assignment,
        )
    }

    async fn heartbeat(&mut self, joined: &Joined, instance: &str) -> ErrorCode {
        let body = self
            .controller
            .heartbeat(GROUP, joined.generation, &joined.member_id, Some(instance))
            .await
            .expect("heartbeat");
        let Body::HeartbeatResponse(response) = body else {
            panic!("heartbeat answered {body:?}");
        };
        ErrorCode::try_from(response.error_code).expect("error code")
    }

    /// One member forms the group alone and owns every partition.
    async fn formed_by(&mut self, instance: &str) -> Joined {
        let joined = self.join(instance, "").await;
        assert_eq!(joined.leader, joined.member_id, "the first member leads");
        self.takes_everything(&joined, instance).await;
        joined
    }

    /// `leader` hands every partition to itself, and gets them.
    async fn takes_everything(&mut self, leader: &Joined, instance: &str) {
        let (code, assignment) = self
            .sync(leader, instance, &[(&leader.member_id, b"all")])
            .await;
        assert_eq!((ErrorCode::None, &b"all"[..]), (code, &assignment[..]));
    }
}

#[tokio::test]
async fn a_leader_that_died_mid_rebalance_is_replaced_after_its_session() {
    let mut group = Coordinated::new().await;
    let _a = group.formed_by("seat-view-a").await;

    // b joins: a rebalance led by a, which is gone (killed) and never answers.
    let b = group.join("seat-view-b", "").await;
    assert_ne!(b.leader, b.member_id);
    let (code, _) = group.sync(&b, "seat-view-b", &[]).await;
    assert_eq!(
        ErrorCode::RebalanceInProgress,
        code,
        "only the leader forms a group"
    );

    // b waits for its leader the way a client does, asking again (a sync is contact, so b's
    // own session stays alive); a says nothing.
    let started = tokio::time::Instant::now();
    while started.elapsed() < LAPSE {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (code, _) = group.sync(&b, "seat-view-b", &[]).await;
        assert_eq!(ErrorCode::RebalanceInProgress, code);
    }
    let b = group.join("seat-view-b", &b.member_id).await;
    assert_eq!(
        b.leader, b.member_id,
        "a's session lapsed: b must lead now, or the group waits for a dead leader for ever"
    );
    assert_eq!(vec![b.member_id.clone()], b.members);
    group.takes_everything(&b, "seat-view-b").await;
}

#[tokio::test]
async fn a_member_dying_in_a_formed_group_makes_the_others_rebalance() {
    let mut group = Coordinated::new().await;
    let a = group.join("seat-view-a", "").await;
    let b = group.join("seat-view-b", "").await;
    // a leads; both rejoin at b's generation, a hands out the partitions.
    let a = group.join("seat-view-a", &a.member_id).await;
    let b = group.join("seat-view-b", &b.member_id).await;
    assert_eq!(a.generation, b.generation);
    let (code, _) = group
        .sync(
            &a,
            "seat-view-a",
            &[(&a.member_id, b"half a"), (&b.member_id, b"half b")],
        )
        .await;
    assert_eq!(ErrorCode::None, code);
    let (_, assignment) = group.sync(&b, "seat-view-b", &[]).await;
    assert_eq!(&b"half b"[..], &assignment[..]);

    // a dies; b keeps heartbeating (every second, well inside its session).
    let mut told = ErrorCode::None;
    for _ in 0..(LAPSE.as_secs() + 2) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        told = group.heartbeat(&b, "seat-view-b").await;
        if told != ErrorCode::None {
            break;
        }
    }
    assert_eq!(
        ErrorCode::RebalanceInProgress,
        told,
        "b must be told to rejoin once a expired, or a's half is never consumed again"
    );
    let b = group.join("seat-view-b", &b.member_id).await;
    assert_eq!(b.leader, b.member_id);
    assert_eq!(
        vec![b.member_id.clone()],
        b.members,
        "b leads alone and assigns a's partitions too"
    );
    group.takes_everything(&b, "seat-view-b").await;
}

#[tokio::test]
async fn a_follower_never_forms_a_group_without_its_leader() {
    let mut group = Coordinated::new().await;
    let _a = group.formed_by("seat-view-a").await;
    let b = group.join("seat-view-b", "").await;

    // The leader's session lapses while b, still alive (heartbeating), has the join's answer
    // in hand. b's sync must not form the group with b's empty assignment (every member would
    // then own nothing while heartbeats succeed): b must rejoin and lead.
    for _ in 0..LAPSE.as_secs() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = group.heartbeat(&b, "seat-view-b").await;
    }
    let (code, assignment) = group.sync(&b, "seat-view-b", &[]).await;
    assert_eq!(ErrorCode::RebalanceInProgress, code, "b got {assignment:?}");
    let b = group.join("seat-view-b", &b.member_id).await;
    assert_eq!(b.leader, b.member_id);
    group.takes_everything(&b, "seat-view-b").await;
}

#[tokio::test]
async fn a_static_member_back_under_a_new_member_id_replaces_its_earlier_self() {
    let mut group = Coordinated::new().await;
    let first = group.formed_by("seat-view-a").await;

    // The same instance with another member id (a client that lost the broker's answer).
    let again = group
        .join("seat-view-a", "seat-view-a-another-incarnation")
        .await;
    assert_eq!("seat-view-a-another-incarnation", again.member_id);
    assert_eq!(
        vec![again.member_id.clone()],
        again.members,
        "one member per instance: {} is gone",
        first.member_id
    );
    assert_eq!(again.leader, again.member_id);
    group.takes_everything(&again, "seat-view-a").await;
}
