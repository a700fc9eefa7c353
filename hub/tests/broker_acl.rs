//! The shipped Mosquitto config and ACL (hub/mosquitto/) on a real broker: TLS only, no anonymous
//! clients, credentials added to a running broker by `hub add-instance` + SIGHUP, and an instance
//! confined to its own topics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::Mosquitto;
use support::mqtt::{Seen, connect, options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_confined_to_their_own_topics() {
    let broker = Mosquitto::start();
    let url = broker.url();
    let ca = broker.ca();

    // The hub's credential works; nothing else was added yet.
    let mut hub = connect(
        options(&url, &ca, "hub-test", "hub", &broker.hub_password),
        false,
    );
    assert_eq!(hub.connected().await, "Success");
    assert_eq!(
        hub.subscribe("oracle/#").await,
        vec!["Success(AtLeastOnce)"]
    );

    // Before add-instance, instance a cannot log in.
    let mut early = connect(options(&url, &ca, "a", "a", "whatever"), true);
    let r = early.connected().await;
    assert!(
        r.contains("NotAuthorized") || r.contains("BadUserNamePassword") || r.contains("error"),
        "{r}"
    );

    // add-instance writes the credential; the running broker reads it on SIGHUP.
    let token_a = broker.add_instance("a");
    let token_b = broker.add_instance("b");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(broker.tokens.join("a.token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // Wrong password, another instance's token, and no credentials at all are refused.
    for (user, pass) in [("a", "wrong"), ("a", token_b.as_str()), ("", "")] {
        let mut c = connect(options(&url, &ca, "x", user, pass), true);
        let r = c.connected().await;
        assert!(!r.starts_with("Success"), "{user}: {r}");
    }
    // Plain TCP on the TLS listener gets nowhere.
    let mut plain = connect(
        hub::mqtt::options(
            &format!("mqtt://127.0.0.1:{}", broker.port),
            None,
            "p",
            "a",
            &token_a,
            std::time::Duration::from_secs(5),
        )
        .unwrap(),
        true,
    );
    assert!(!plain.connected().await.starts_with("Success"));

    let mut a = connect(options(&url, &ca, "a", "a", &token_a), false);
    assert_eq!(a.connected().await, "Success");
    let mut b = connect(options(&url, &ca, "b", "b", &token_b), false);
    assert_eq!(b.connected().await, "Success");

    // A reads only its own commands: B's commands and anyone's telemetry are refused at SUBACK.
    assert_eq!(
        a.subscribe("oracle/a/commands").await,
        vec!["Success(AtLeastOnce)"]
    );
    // Mosquitto 2.0.11 answers this SUBSCRIBE with success and applies the read ACL to each
    // message it would deliver (seen here; newer brokers may answer NotAuthorized). Either way
    // nothing of B's may arrive, which is what is checked below.
    let sub = a.subscribe("oracle/b/commands").await;
    assert!(
        sub == ["NotAuthorized"] || sub == ["Success(AtLeastOnce)"],
        "{sub:?}"
    );
    assert_eq!(
        b.subscribe("oracle/b/commands").await,
        vec!["Success(AtLeastOnce)"]
    );
    // A wildcard is accepted as a filter, but the ACL is applied to every message delivered.
    a.subscribe("oracle/+/telemetry").await;

    // A publishes into B's streams, into its own commands, and then (control) into its own stream.
    a.publish("oracle/b/telemetry", b"forged by a", false).await;
    a.publish("oracle/b/status", b"forged by a", true).await;
    a.publish("oracle/a/commands", b"self-command by a", false)
        .await;
    a.publish("oracle/a/telemetry", b"a's own", false).await;
    b.publish("oracle/b/telemetry", b"b's own", false).await;
    // The hub publishes a command to each.
    hub.publish("oracle/a/commands", b"for a", false).await;
    hub.publish("oracle/b/commands", b"for b", false).await;

    let got_hub = hub.drain(1500).await;
    let got_a = a.drain(300).await;
    let got_b = b.drain(300).await;
    let topics = |v: &[(String, Vec<u8>)]| {
        v.iter()
            .map(|(t, p)| format!("{t}={}", String::from_utf8_lossy(p)))
            .collect::<Vec<_>>()
    };
    let hub_seen = topics(&got_hub);
    assert!(
        hub_seen.contains(&"oracle/a/telemetry=a's own".to_string()),
        "{hub_seen:?}"
    );
    assert!(
        hub_seen.contains(&"oracle/b/telemetry=b's own".to_string()),
        "{hub_seen:?}"
    );
    assert!(
        !hub_seen
            .iter()
            .any(|s| s.contains("forged") || s.contains("self-command")),
        "{hub_seen:?}"
    );
    // A sees only its own command; not B's, not any telemetry (its own included: write-only).
    assert_eq!(topics(&got_a), vec!["oracle/a/commands=for a".to_string()]);
    assert_eq!(topics(&got_b), vec!["oracle/b/commands=for b".to_string()]);

    // A retained status is kept for a hub that subscribes later (the fleet page's first view).
    a.publish("oracle/a/status", b"online", true).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut late = connect(
        options(&url, &ca, "hub-late", "hub", &broker.hub_password),
        false,
    );
    assert_eq!(late.connected().await, "Success");
    late.subscribe("oracle/+/status").await;
    let retained = late
        .wait_for(5, |s| match s {
            Seen::Publish {
                topic,
                payload,
                retain,
            } => Some((topic.clone(), payload.clone(), *retain)),
            _ => None,
        })
        .await
        .expect("the retained status");
    assert_eq!(
        retained,
        ("oracle/a/status".into(), b"online".to_vec(), true)
    );
    assert!(
        late.drain(300).await.is_empty(),
        "B's forged retained status must not exist"
    );

    // An oversized packet (above max_packet_size) disconnects its sender; nothing reaches the hub.
    a.publish("oracle/a/telemetry", &vec![b'x'; 300 * 1024], false)
        .await;
    let dropped = a
        .wait_for(5, |s| match s {
            Seen::Error(e) => Some(e.clone()),
            _ => None,
        })
        .await;
    assert!(
        dropped.is_some(),
        "the broker must drop a client sending > max_packet_size"
    );
    assert!(hub.drain(500).await.iter().all(|(_, p)| p.len() < 1024));

    // The hub's own username is no instance id; an existing instance is not silently replaced.
    let files = broker.files();
    let hub_id = fleet::InstanceId::new("hub").unwrap();
    assert!(matches!(
        hub::broker::add_instance(&files, &hub_id, false),
        Err(hub::broker::BrokerError::Reserved(_))
    ));
    let a_id = fleet::InstanceId::new("a").unwrap();
    assert!(matches!(
        hub::broker::add_instance(&files, &a_id, false),
        Err(hub::broker::BrokerError::Exists(_))
    ));
    // Rotation: a new token; after the reload the old one is refused and the new one works.
    let path = hub::broker::add_instance(&files, &a_id, true).unwrap();
    let rotated = hub::config::read_secret(&path).unwrap();
    assert_ne!(rotated, token_a);
    broker.reload();
    let mut old = connect(options(&url, &ca, "a-old", "a", &token_a), true);
    assert!(
        !old.connected().await.starts_with("Success"),
        "the old token after rotation"
    );
    let mut new = connect(options(&url, &ca, "a-new", "a", &rotated), false);
    assert_eq!(new.connected().await, "Success");

    // remove-instance + reload: the next login is refused.
    hub::broker::remove_instance(&broker.files(), &fleet::InstanceId::new("b").unwrap()).unwrap();
    broker.reload();
    let mut gone = connect(options(&url, &ca, "b2", "b", &token_b), true);
    assert!(!gone.connected().await.starts_with("Success"));
    assert!(!broker.tokens.join("b.token").exists());
}
