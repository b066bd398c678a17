use super::*;

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
    let mut calls = 0;
    let out: std::result::Result<u32, _> = again(|| {
        calls += 1;
        let result = if calls < 3 { Err(refused()) } else { Ok(7) };
        async move { result }
    })
    .await;
    assert_eq!((out.ok(), calls), (Some(7), 3));
    let mut calls = 0;
    let out: std::result::Result<u32, _> = again(|| {
        calls += 1;
        async { Err(refused()) }
    })
    .await;
    assert!(out.is_err());
    assert_eq!(calls, UNSENT_RETRIES + 1, "then it gives up");
}
