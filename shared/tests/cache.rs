//! The cache's contract, on the in-process map and on real Redis.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test: a panic is how it reports a failure"
)]

use std::time::Duration;

use shared::cache::Cache;

async fn check_contract(cache: &Cache) {
    let label = format!("{cache:?}");
    assert_eq!(cache.get("k").await.unwrap(), None, "{label}");
    cache.set("k", "v", Duration::from_secs(60)).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v"));
    let ttl = cache.ttl("k").await.unwrap().expect("ttl");
    assert!(
        ttl > Duration::from_secs(50) && ttl <= Duration::from_secs(60),
        "{label}: {ttl:?}"
    );

    // set_nx: the first writer wins, later ones do not overwrite.
    assert!(
        cache
            .set_nx("lock", "owner-a", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        !cache
            .set_nx("lock", "owner-b", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert_eq!(cache.get("lock").await.unwrap().as_deref(), Some("owner-a"));

    // compare_and_delete releases only the owner's lock.
    assert!(!cache.compare_and_delete("lock", "owner-b").await.unwrap());
    assert!(cache.compare_and_delete("lock", "owner-a").await.unwrap());
    assert_eq!(cache.get("lock").await.unwrap(), None);

    // take is single-use.
    cache
        .set("state", "return-url", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        cache.take("state").await.unwrap().as_deref(),
        Some("return-url")
    );
    assert_eq!(cache.take("state").await.unwrap(), None);

    assert!(cache.delete("k").await.unwrap());
    assert!(!cache.delete("k").await.unwrap());

    assert_eq!(cache.incr("ctr", Duration::from_secs(60)).await.unwrap(), 1);
    assert_eq!(cache.incr("ctr", Duration::from_secs(60)).await.unwrap(), 2);
    assert!(
        cache.ttl("ctr").await.unwrap().is_some(),
        "{label}: counter must expire"
    );
    // decr gives one back, keeps the expiry, and never makes a counter.
    assert_eq!(cache.decr("ctr").await.unwrap(), Some(1));
    assert!(cache.ttl("ctr").await.unwrap().is_some(), "{label}");
    assert_eq!(cache.incr("ctr", Duration::from_secs(60)).await.unwrap(), 2);
    assert_eq!(cache.decr("no-ctr").await.unwrap(), None);
    assert_eq!(cache.get("no-ctr").await.unwrap(), None, "{label}");

    cache.ping().await.unwrap();
}

#[tokio::test]
async fn contract_holds_on_every_cache() {
    for cache in testkit::all_caches().await {
        check_contract(&cache).await;
    }
}

#[tokio::test]
async fn values_expire() {
    for cache in testkit::all_caches().await {
        cache
            .set("short", "v", Duration::from_millis(30))
            .await
            .unwrap();
        assert!(
            cache
                .set_nx("short-lock", "a", Duration::from_millis(30))
                .await
                .unwrap()
        );
        // Waiting for an expiry is the behaviour under test, not synchronisation.
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(cache.get("short").await.unwrap(), None, "{cache:?}");
        assert!(
            cache
                .set_nx("short-lock", "b", Duration::from_secs(5))
                .await
                .unwrap(),
            "{cache:?}"
        );
    }
}

#[tokio::test]
async fn only_one_of_many_concurrent_set_nx_wins() {
    for cache in testkit::all_caches().await {
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let c = cache.clone();
                tokio::spawn(async move {
                    c.set_nx("race", &i.to_string(), Duration::from_secs(30))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += t.await.unwrap() as usize;
        }
        assert_eq!(winners, 1, "{cache:?}");
    }
}

#[tokio::test]
async fn prefixes_keep_tests_apart() {
    let Some((a, _)) = testkit::redis_cache().await else {
        return;
    };
    let Some((b, _)) = testkit::redis_cache().await else {
        return;
    };
    a.set("same", "a", Duration::from_secs(30)).await.unwrap();
    assert_eq!(b.get("same").await.unwrap(), None);
}

#[tokio::test]
async fn unreachable_redis_is_an_error_not_a_hang() {
    // Port 1 on loopback: nothing listens there.
    let result = Cache::connect(Some("redis://127.0.0.1:1"), "x:").await;
    assert!(result.is_err());
}

/// The next notice within a deadline (a hung subscription fails the test
/// rather than the suite).
async fn notice(sub: &mut shared::cache::Subscription) -> Option<shared::cache::Notice> {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a notice within 10 s")
}

#[tokio::test]
async fn published_messages_reach_every_subscriber() {
    use shared::cache::Notice;
    for cache in testkit::all_caches().await {
        let mut a = cache.subscribe("changes");
        let mut b = cache.subscribe("changes");
        let mut other = cache.subscribe("other");
        for sub in [&mut a, &mut b, &mut other] {
            assert_eq!(notice(sub).await, Some(Notice::Live), "{cache:?}");
        }
        cache.publish("changes", "one").await.unwrap();
        cache.publish("changes", "two").await.unwrap();
        for sub in [&mut a, &mut b] {
            assert_eq!(notice(sub).await, Some(Notice::Message("one".into())));
            assert_eq!(notice(sub).await, Some(Notice::Message("two".into())));
        }
        // Nothing crossed over to another channel.
        cache.publish("other", "three").await.unwrap();
        assert_eq!(
            notice(&mut other).await,
            Some(Notice::Message("three".into())),
            "{cache:?}"
        );
    }
}

/// Redis going away is reported (`Lost`), and once it is back the
/// subscription is re-established by itself (`Live`) and delivers again.
#[tokio::test]
async fn a_redis_subscription_reports_the_outage_and_resubscribes() {
    use shared::cache::Notice;
    if !testkit::RedisServer::available() {
        return;
    }
    let mut redis = testkit::RedisServer::start(&std::env::temp_dir())
        .await
        .expect("redis-server starts");
    let cache = Cache::connect(Some(&redis.url()), "pubsub:").await.unwrap();
    let mut sub = cache.subscribe("changes");
    assert_eq!(notice(&mut sub).await, Some(Notice::Live));
    redis.kill().expect("kill our redis-server");
    assert_eq!(notice(&mut sub).await, Some(Notice::Lost));
    redis.restart().await.expect("redis-server starts again");
    assert_eq!(notice(&mut sub).await, Some(Notice::Live));
    // The command connection reconnects by itself too; retry until it has.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while cache.publish("changes", "after").await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "publish never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        notice(&mut sub).await,
        Some(Notice::Message("after".into()))
    );
}
