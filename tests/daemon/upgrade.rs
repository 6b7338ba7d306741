//! An upgrade: the store's frozen members were made by another binary.
//! The daemon serves the stored snapshots at once, rebuilds the members
//! behind them, and says so in `/healthz`; nothing served changes.

use crate::common::{Daemon, assert_same_snapshot, service, wait_for};
use rgmerge::commands::bench;

#[tokio::test]
async fn after_an_upgrade_stored_snapshots_are_served_while_members_are_rebuilt() {
    // The rebuild waits for this file: the test sees it under way without
    // racing it.
    let gate_dir = tempfile::tempdir().expect("tempdir");
    let gate = gate_dir.path().join("open");
    let mut d = Daemon::builder()
        .env("RGMERGE_TEST_REBUILD_GATE", &gate)
        .start();
    let c = d.client();
    let comp = c.composite("shared").await;
    let blue = c.standard("blue").await;
    let yellow = c.standard("yellow").await;
    c.add(&comp, &[&blue, &yellow]).await.expect(204);
    c.put_config(&blue, &service("svc", "blue.internal"))
        .await
        .expect(200);
    c.put_config(&yellow, &service("yellow-svc", "yellow.internal"))
        .await
        .expect(200);
    let before = c.snapshot(&comp).await;
    let blue_before = c.snapshot(&blue).await;
    assert!(
        c.health().await.get("rebuilding").is_none(),
        "no upgrade yet"
    );
    let status = d.stop();
    assert!(status.success(), "{}", d.log());

    let restamped = bench::restamp_frozen(&d.data, "an older rgmerge").expect("restamp");
    assert!(restamped >= 2, "blue's and yellow's members: {restamped}");
    d.restart();
    let c = d.client();
    let health = c.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["rebuilding"]["state"], "rebuilding", "{health}");
    assert_eq!(health["rebuilding"]["done"], 0, "{health}");
    assert!(health["rebuilding"]["of"].as_u64() >= Some(2), "{health}");
    let during = c.snapshot(&comp).await;
    assert_same_snapshot(&before, &during);
    assert_eq!(before.etag(), during.etag());
    assert_same_snapshot(&blue_before, &c.snapshot(&blue).await);

    std::fs::write(&gate, b"").expect("open the gate");
    wait_for("the members rebuilt", || async {
        c.health().await["rebuilding"]["state"] == "rebuilt"
    })
    .await;
    let health = c.health().await;
    assert_eq!(health["rebuilding"]["done"], health["rebuilding"]["of"]);
    let after = c.snapshot(&comp).await;
    assert_same_snapshot(&before, &after);
    assert_eq!(before.etag(), after.etag());
    // Writes go on from the rebuilt members: the next version.
    c.put_config(&blue, &service("svc", "blue.example"))
        .await
        .expect(200);
    let next = c.snapshot(&comp).await;
    let version = |r: &crate::common::Resp| {
        r.header("x-snapshot-version")
            .and_then(|v| v.parse::<u64>().ok())
            .expect("a version")
    };
    assert_eq!(version(&next), version(&before) + 1);

    // The rebuilt members were stored frozen: no rebuild on the next start.
    d.restart();
    let c = d.client();
    assert!(c.health().await.get("rebuilding").is_none());
    assert_same_snapshot(&next, &c.snapshot(&comp).await);
    d.assert_no_panic();
}
