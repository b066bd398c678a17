use super::*;

#[test]
fn every_kind_has_a_name_or_time_first_and_rows_match_headers() {
    let now = Utc::now();
    for kind in Kind::ALL {
        let object = Object::from_json(serde_json::json!({
            "kind": kind.as_str(), "metadata": {"name": "x", "namespace": "default"}
        }))
        .unwrap();
        for wide in [false, true] {
            let (header, rows) = table(*kind, std::slice::from_ref(&object), wide, now);
            assert!(matches!(header[0], "NAME" | "LAST SEEN"), "{kind}");
            assert_eq!(rows.len(), 1, "{kind}");
            assert_eq!(rows[0].len(), header.len(), "{kind} wide={wide}");
        }
    }
}

#[test]
fn pods_with_init_containers_show_how_far_they_are_as_kubectl_does() {
    let pod = |inits: serde_json::Value| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "a"}, {"name": "b"}],
                     "containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "initContainerStatuses": inits,
              "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]}
        }))
        .unwrap()
    };
    let done = serde_json::json!({"name": "a", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
    let waiting = |reason: &str, restarts: i64| {
        serde_json::json!({"name": "b", "ready": false, "restartCount": restarts,
            "state": {"waiting": {"reason": reason}}})
    };
    let running = serde_json::json!({"name": "b", "ready": false, "restartCount": 0,
        "state": {"running": {}}});
    let failed = serde_json::json!({"name": "b", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 3, "reason": "Error"}}});
    let cases = [
        (
            serde_json::json!([waiting("ContainerCreating", 0)]),
            "Init:0/2",
            0,
        ),
        (serde_json::json!([done.clone(), running]), "Init:1/2", 0),
        (
            serde_json::json!([done.clone(), waiting("CrashLoopBackOff", 4)]),
            "Init:CrashLoopBackOff",
            4,
        ),
        (serde_json::json!([done.clone(), failed]), "Init:Error", 0),
    ];
    for (inits, status, restarts) in cases {
        let p = pod(inits);
        assert_eq!(pod_status(&p), status);
        assert_eq!(pod_restarts(&p), restarts);
        assert_eq!(pod_ready(&p), "0/1");
    }
    // Every init container done: the app containers speak again.
    let mut p = pod(serde_json::json!([done.clone(), done]));
    p.status.as_mut().unwrap().phase = Some(PodPhase::Running);
    p.status.as_mut().unwrap().container_statuses = None;
    assert_eq!(pod_status(&p), "Running");
}
