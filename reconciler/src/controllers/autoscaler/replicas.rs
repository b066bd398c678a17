//! How many replicas one metric asks for, as Kubernetes' replica calculator decides it:
//! the ratio of the pods' use to the target, with a 10% tolerance, and pods without a
//! measurement (new, or on a node that did not answer) or not yet ready counted so that they
//! never cause a change the measured pods do not ask for.

/// Changes within 10% of the target are not made (`--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;

/// Where a pod stands for the calculation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Standing {
    /// Running and ready (or ready is irrelevant: memory), with its use if measured.
    Ready(Option<f64>),
    /// Pending, or (for CPU) not ready: its use is not trusted, and counts as none when
    /// scaling up.
    Unready,
}

/// One pod's part: its standing and its base, what its use is compared to: its request
/// (utilization targets) or 1 (average-value targets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodPart {
    pub standing: Standing,
    pub base: f64,
}

/// A metric's target, per unit of base: a utilization of 50% is 0.5 of the request, an
/// average value of 200m is 200 millicores per pod.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goal {
    pub per_base: f64,
    /// What a pod without a measurement is taken to use, per unit of base, when the
    /// measured pods ask for fewer replicas: at least its whole request (utilization), or
    /// exactly the target (average value). Never less than the target, so missing pods
    /// hold a scale-down back.
    pub missing_on_scale_down: f64,
}

/// What the calculation found: the replicas it proposes and the use it measured, per unit
/// of base over the measured ready pods (the utilization, or the average value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    pub replicas: i64,
    pub measured: f64,
}

/// The replicas `pods` ask for against `goal`, with `current` replicas now; `Err` when no
/// ready pod has a measurement.
pub fn propose(pods: &[PodPart], goal: Goal, current: i64) -> Result<Proposal, &'static str> {
    let measured: Vec<(f64, f64)> = pods
        .iter()
        .filter_map(|p| match p.standing {
            Standing::Ready(Some(usage)) => Some((usage, p.base)),
            _ => None,
        })
        .collect();
    let ratio_of = |parts: &[(f64, f64)]| {
        let (usage, base) = parts
            .iter()
            .fold((0.0, 0.0), |(u, b), (pu, pb)| (u + pu, b + pb));
        (base > 0.0).then(|| usage / base)
    };
    let Some(per_base) = ratio_of(&measured) else {
        return Err(keel_api::health::NOT_MEASURED_YET);
    };
    let ratio = per_base / goal.per_base;
    let ready = pods
        .iter()
        .filter(|p| matches!(p.standing, Standing::Ready(_)))
        .count();
    let missing = pods
        .iter()
        .filter(|p| matches!(p.standing, Standing::Ready(None)));
    let unready = pods
        .iter()
        .filter(|p| matches!(p.standing, Standing::Unready));
    let scale_up_with_unready = unready.clone().count() > 0 && ratio > 1.0;
    let keep = Proposal {
        replicas: current,
        measured: per_base,
    };
    if !scale_up_with_unready && missing.clone().count() == 0 {
        if (1.0 - ratio).abs() <= TOLERANCE {
            return Ok(keep);
        }
        return Ok(Proposal {
            replicas: (ratio * ready as f64).ceil() as i64,
            measured: per_base,
        });
    }
    // Fill in the pods without a trusted measurement, against the direction of change.
    let mut filled = measured;
    if ratio < 1.0 {
        filled.extend(missing.map(|p| (p.base * goal.missing_on_scale_down, p.base)));
    } else if ratio > 1.0 {
        filled.extend(missing.map(|p| (0.0, p.base)));
    }
    if scale_up_with_unready {
        filled.extend(unready.map(|p| (0.0, p.base)));
    }
    let Some(new_per_base) = ratio_of(&filled) else {
        return Ok(keep);
    };
    let new_ratio = new_per_base / goal.per_base;
    let flipped = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if (1.0 - new_ratio).abs() <= TOLERANCE || flipped {
        return Ok(keep);
    }
    let replicas = (new_ratio * filled.len() as f64).ceil() as i64;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(keep);
    }
    Ok(Proposal {
        replicas,
        measured: per_base,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF_OF_REQUEST: Goal = Goal {
        per_base: 0.5,
        missing_on_scale_down: 1.0,
    };

    fn ready(usage: f64) -> PodPart {
        PodPart {
            standing: Standing::Ready(Some(usage)),
            base: 100.0,
        }
    }

    fn missing() -> PodPart {
        PodPart {
            standing: Standing::Ready(None),
            base: 100.0,
        }
    }

    fn unready() -> PodPart {
        PodPart {
            standing: Standing::Unready,
            base: 100.0,
        }
    }

    fn replicas(pods: &[PodPart], current: i64) -> i64 {
        propose(pods, HALF_OF_REQUEST, current).unwrap().replicas
    }

    #[test]
    fn use_over_the_target_asks_for_more_in_proportion() {
        // 90% of requests against a 50% target: 1.8 times the pods.
        assert_eq!(replicas(&[ready(90.0), ready(90.0)], 2), 4);
        // 20% against 50%: fewer, rounded up.
        assert_eq!(replicas(&[ready(20.0), ready(20.0), ready(20.0)], 3), 2);
        let found = propose(&[ready(90.0), ready(70.0)], HALF_OF_REQUEST, 2).unwrap();
        assert!((found.measured - 0.8).abs() < 1e-9, "{found:?}");
    }

    #[test]
    fn within_ten_percent_nothing_changes() {
        assert_eq!(replicas(&[ready(54.0), ready(54.0)], 2), 2);
        assert_eq!(replicas(&[ready(46.0), ready(46.0)], 2), 2);
        assert_eq!(replicas(&[ready(56.0), ready(56.0)], 2), 3);
    }

    #[test]
    fn pods_without_a_measurement_hold_back_the_change_they_cannot_confirm() {
        // Scaling down, a missing pod counts as using its whole request: 20+100 over 2 pods
        // is 60%, above the target, so the direction flips and nothing changes.
        assert_eq!(replicas(&[ready(20.0), missing()], 2), 2);
        // With more measured pods low, the scale-down goes on, less far.
        assert_eq!(
            replicas(&[ready(10.0), ready(10.0), ready(10.0), missing()], 4),
            3
        );
        // Scaling up, a missing pod counts as idle: 100+0 is 50%: the target, no change.
        assert_eq!(replicas(&[ready(100.0), missing()], 2), 2);
        assert_eq!(replicas(&[ready(150.0), missing()], 2), 3);
    }

    #[test]
    fn unready_pods_count_as_idle_when_scaling_up_and_are_left_out_when_scaling_down() {
        assert_eq!(replicas(&[ready(100.0), unready()], 2), 2);
        assert_eq!(replicas(&[ready(200.0), unready()], 2), 4);
        // Down: only the ready pod's share is scaled.
        assert_eq!(replicas(&[ready(10.0), unready()], 2), 1);
    }

    #[test]
    fn no_measured_ready_pod_is_an_error_not_a_guess() {
        assert!(propose(&[missing(), unready()], HALF_OF_REQUEST, 2).is_err());
        assert!(propose(&[], HALF_OF_REQUEST, 2).is_err());
    }

    #[test]
    fn average_values_compare_use_per_pod() {
        // 300m per pod against 200m per pod on 2 pods: 3.
        let goal = Goal {
            per_base: 200.0,
            missing_on_scale_down: 200.0,
        };
        let pod = |usage| PodPart {
            standing: Standing::Ready(Some(usage)),
            base: 1.0,
        };
        let found = propose(&[pod(300.0), pod(300.0)], goal, 2).unwrap();
        assert_eq!(found.replicas, 3);
        assert!((found.measured - 300.0).abs() < 1e-9);
    }
}
