use super::*;

/// Runs [`again`] over a call that fails with `error` on its first `failures` calls and
/// then answers 7 (`None`: never answers); its outcome and how many calls it took.
async fn calls_until(
    failures: Option<u32>,
    error: fn() -> etcd_client::Error,
) -> (Option<u32>, u32) {
    let mut calls = 0;
    let out: std::result::Result<u32, _> = again(|| {
        calls += 1;
        let result = match failures {
            Some(n) if calls > n => Ok(7),
            _ => Err(error()),
        };
        async move { result }
    })
    .await;
    (out.ok(), calls)
}

#[tokio::test]
async fn only_calls_that_never_left_are_tried_again() {
    let refused = || {
        etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
            "tcp connect error: Connection refused (os error 111)",
        ))
    };
    assert!(unsent(&refused()));
    // A call that reached etcd and failed there may have done something.
    let answered =
        etcd_client::Error::GRpcStatus(tonic::Status::unavailable("etcdserver: leader changed"));
    assert!(!unsent(&answered));
    assert_eq!(calls_until(Some(2), refused).await, (Some(7), 3));
    assert_eq!(
        calls_until(None, refused).await,
        (None, UNSENT_RETRIES + 1),
        "then it gives up"
    );
}

#[tokio::test(start_paused = true)]
async fn calls_etcd_refused_for_load_are_tried_again_after_a_pause() {
    // As etcd answers when it is more than 5,000 entries behind: refused before anything
    // was proposed.
    let refused =
        || etcd_client::Error::GRpcStatus(tonic::Status::unknown("etcdserver: too many requests"));
    assert!(refused_for_load(&refused()));
    assert!(!unsent(&refused()), "it did reach etcd");
    let other =
        etcd_client::Error::GRpcStatus(tonic::Status::unknown("etcdserver: request timed out"));
    assert!(
        !refused_for_load(&other),
        "a timed-out request may have been applied"
    );
    let started = tokio::time::Instant::now();
    assert_eq!(calls_until(Some(3), refused).await, (Some(7), 4));
    // 20, 40 and 80 ms, each with up to half again.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(140) && waited <= Duration::from_millis(210),
        "{waited:?}"
    );
    assert_eq!(
        calls_until(None, refused).await,
        (None, REFUSED_RETRIES + 1),
        "then it gives up"
    );
}
