//! `behavior`: how fast an autoscaler may act on its recommendations, as Kubernetes
//! applies it. Stabilization takes, over the last window, the lowest recommendation when
//! scaling up and the highest when scaling down (so a brief dip does not remove pods);
//! policies then limit the change per period (`Pods` or `Percent`), the most permissive or
//! the least (`selectPolicy`), and min and max bound it all.

use std::time::{Duration, Instant};

use keel_schema::types::autoscaling::{HpaScalingRules, scale_down_rules, scale_up_rules};

/// An autoscaler's memory: its recent recommendations and scale changes. Kept in the
/// controller's memory, as Kubernetes keeps it; a new leader starts afresh (and holds
/// scale-downs back for a window, see [`History::decide`]).
#[derive(Debug, Default, Clone)]
pub struct History {
    recommendations: Vec<(Instant, i64)>,
    /// (when, by how many), each positive.
    ups: Vec<(Instant, i64)>,
    downs: Vec<(Instant, i64)>,
}

/// The rules an autoscaler scales by: its own, filled in with Kubernetes' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub up: HpaScalingRules,
    pub down: HpaScalingRules,
    pub min: i64,
    pub max: i64,
}

impl Rules {
    pub fn of(spec: &keel_schema::types::autoscaling::HorizontalPodAutoscalerSpec) -> Rules {
        let behavior = spec.behavior.as_ref();
        Rules {
            up: scale_up_rules(behavior.and_then(|b| b.scale_up.as_ref())),
            down: scale_down_rules(behavior.and_then(|b| b.scale_down.as_ref())),
            min: i64::from(spec.min_replicas.unwrap_or(1)),
            max: i64::from(spec.max_replicas),
        }
    }
}

/// What was decided, and why when it is not what the metrics asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub replicas: i64,
    /// Stabilization changed the recommendation (condition AbleToScale's reason).
    pub stabilized: Option<(&'static str, &'static str)>,
    /// A policy, min or max bounded it (condition ScalingLimited's reason and message).
    pub limited: Option<(&'static str, String)>,
}

const HELD_HIGHER: &str = "recent recommendations were higher than current one, applying the highest recent recommendation";
const HELD_LOWER: &str =
    "recent recommendations were lower than current one, applying the lowest recent recommendation";
const FASTER: &str = "the desired replica count is increasing faster than the maximum scale rate";
const SLOWER: &str = "the desired replica count is decreasing faster than the maximum scale rate";
const TOO_MANY: &str = "the desired replica count is more than the maximum replica count";
const TOO_FEW: &str = "the desired replica count is less than the minimum replica count";

fn window(rules: &HpaScalingRules) -> Duration {
    Duration::from_secs(u64::try_from(rules.stabilization_window_seconds.unwrap_or(0)).unwrap_or(0))
}

impl History {
    /// The replicas to set, from `recommended` (the metrics' wish) with `current` replicas
    /// now; the recommendation is remembered.
    pub fn decide(
        &mut self,
        rules: &Rules,
        recommended: i64,
        current: i64,
        now: Instant,
    ) -> Decision {
        // A fresh autoscaler (or a new leader) has not seen the last window: it assumes the
        // current count was recommended, so pods are not removed before a window has passed.
        if self.recommendations.is_empty() && window(&rules.down) > Duration::ZERO {
            self.recommendations.push((now, current));
        }
        let up_since = now.checked_sub(window(&rules.up));
        let down_since = now.checked_sub(window(&rules.down));
        let within = |since: Option<Instant>, at: Instant| since.is_none_or(|s| at > s);
        let (mut up, mut down) = (recommended, recommended);
        for &(at, r) in &self.recommendations {
            if within(up_since, at) {
                up = up.min(r);
            }
            if within(down_since, at) {
                down = down.max(r);
            }
        }
        let stabilized_count = current.max(up).min(down);
        self.recommendations
            .retain(|&(at, _)| within(up_since, at) || within(down_since, at));
        self.recommendations.push((now, recommended));
        let stabilized = match stabilized_count.cmp(&recommended) {
            std::cmp::Ordering::Greater => Some(("ScaleDownStabilized", HELD_HIGHER)),
            std::cmp::Ordering::Less => Some(("ScaleUpStabilized", HELD_LOWER)),
            std::cmp::Ordering::Equal => None,
        };
        let (replicas, limited) = self.limit(rules, stabilized_count, current, now);
        Decision {
            replicas,
            stabilized,
            limited,
        }
    }

    /// `wanted` within min, max and the policies' limits for this period.
    fn limit(
        &self,
        rules: &Rules,
        wanted: i64,
        current: i64,
        now: Instant,
    ) -> (i64, Option<(&'static str, String)>) {
        let limited = |to: i64, reason: &'static str, message: &str| {
            (to, Some((reason, message.to_string())))
        };
        if wanted > current {
            let by_policy = self
                .period_limit(&rules.up, current, now, true)
                .max(current);
            let (ceiling, reason, message) = if rules.max > by_policy {
                (by_policy, "ScaleUpLimit", FASTER)
            } else {
                (rules.max, "TooManyReplicas", TOO_MANY)
            };
            if wanted > ceiling {
                return limited(ceiling, reason, message);
            }
        } else if wanted < current {
            let by_policy = self
                .period_limit(&rules.down, current, now, false)
                .min(current);
            let (floor, reason, message) = if rules.min < by_policy {
                (by_policy, "ScaleDownLimit", SLOWER)
            } else {
                (rules.min, "TooFewReplicas", TOO_FEW)
            };
            if wanted < floor {
                return limited(floor, reason, message);
            }
        } else if wanted > rules.max {
            return limited(rules.max, "TooManyReplicas", TOO_MANY);
        } else if wanted < rules.min {
            return limited(rules.min, "TooFewReplicas", TOO_FEW);
        }
        (wanted, None)
    }

    /// The furthest the policies let the count go this period (up or down).
    fn period_limit(&self, rules: &HpaScalingRules, current: i64, now: Instant, up: bool) -> i64 {
        let select = rules.select_policy.as_deref().unwrap_or("Max");
        if select == "Disabled" {
            return current;
        }
        // Up, `Max` takes the highest limit; down, the lowest (the most change either way).
        let most = (select == "Max") == up;
        let mut found: Option<i64> = None;
        for policy in rules.policies.iter().flatten() {
            let period = Duration::from_secs(u64::try_from(policy.period_seconds).unwrap_or(0));
            let since = now.checked_sub(period);
            let changed = |events: &[(Instant, i64)]| -> i64 {
                events
                    .iter()
                    .filter(|(at, _)| since.is_none_or(|s| *at > s))
                    .map(|(_, n)| n)
                    .sum()
            };
            let start = current - changed(&self.ups) + changed(&self.downs);
            let value = i64::from(policy.value);
            let proposed = match (policy.type_.as_str(), up) {
                ("Pods", true) => start + value,
                ("Pods", false) => start - value,
                (_, true) => (start as f64 * (1.0 + value as f64 / 100.0)).ceil() as i64,
                (_, false) => (start as f64 * (1.0 - value as f64 / 100.0)) as i64,
            };
            found = Some(match found {
                None => proposed,
                Some(f) if most => f.max(proposed),
                Some(f) => f.min(proposed),
            });
        }
        found.unwrap_or(current)
    }

    /// Remembers a change that was made, for the policies' periods.
    pub fn scaled(&mut self, from: i64, to: i64, now: Instant, rules: &Rules) {
        let longest = |r: &HpaScalingRules| {
            r.policies
                .iter()
                .flatten()
                .map(|p| u64::try_from(p.period_seconds).unwrap_or(0))
                .max()
                .unwrap_or(0)
        };
        let keep = Duration::from_secs(longest(&rules.up).max(longest(&rules.down)));
        let recent = |at: &Instant| now.saturating_duration_since(*at) <= keep;
        self.ups.retain(|(at, _)| recent(at));
        self.downs.retain(|(at, _)| recent(at));
        match to.cmp(&from) {
            std::cmp::Ordering::Greater => self.ups.push((now, to - from)),
            std::cmp::Ordering::Less => self.downs.push((now, from - to)),
            std::cmp::Ordering::Equal => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use keel_schema::types::autoscaling::{
        HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, HpaScalingPolicy,
    };

    use super::*;

    fn rules(min: i32, max: i32, behavior: Option<HorizontalPodAutoscalerBehavior>) -> Rules {
        Rules::of(&HorizontalPodAutoscalerSpec {
            min_replicas: Some(min),
            max_replicas: max,
            behavior,
            ..Default::default()
        })
    }

    fn policy(type_: &str, value: i32, period_seconds: i32) -> HpaScalingPolicy {
        HpaScalingPolicy {
            type_: type_.into(),
            value,
            period_seconds,
        }
    }

    fn seconds(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn by_default_scaling_up_goes_by_four_pods_or_double_per_15_seconds() {
        let rules = rules(1, 100, None);
        let mut history = History::default();
        let t0 = Instant::now();
        // From 1: max(1 + 4, 2 × 1) = 5.
        let first = history.decide(&rules, 40, 1, t0);
        assert_eq!(first.replicas, 5);
        assert_eq!(first.limited.as_ref().unwrap().0, "ScaleUpLimit");
        history.scaled(1, 5, t0, &rules);
        // Within the same 15 s, nothing more (the period started at 1).
        assert_eq!(history.decide(&rules, 40, 5, t0 + seconds(5)).replicas, 5);
        // After it, from 5: max(5 + 4, 2 × 5) = 10.
        assert_eq!(history.decide(&rules, 40, 5, t0 + seconds(16)).replicas, 10);
    }

    #[test]
    fn by_default_scaling_down_waits_for_five_minutes_of_lower_recommendations() {
        let rules = rules(1, 10, None);
        let mut history = History::default();
        let t0 = Instant::now();
        let held = history.decide(&rules, 2, 6, t0);
        assert_eq!(
            held.replicas, 6,
            "a fresh autoscaler holds the current count"
        );
        assert_eq!(held.stabilized.unwrap().0, "ScaleDownStabilized");
        assert_eq!(history.decide(&rules, 3, 6, t0 + seconds(120)).replicas, 6);
        // Five minutes after the first: the highest of the window (3) wins.
        assert_eq!(history.decide(&rules, 2, 6, t0 + seconds(301)).replicas, 3);
    }

    #[test]
    fn policies_limit_the_change_per_period_and_select_policy_picks_among_them() {
        let behavior = |select: &str| HorizontalPodAutoscalerBehavior {
            scale_down: Some(HpaScalingRules {
                stabilization_window_seconds: Some(0),
                select_policy: Some(select.into()),
                policies: Some(vec![policy("Pods", 1, 60), policy("Percent", 50, 60)]),
            }),
            scale_up: None,
        };
        let t0 = Instant::now();
        // Down from 10 to 2: Pods allows 9, Percent 5; Max is the most change (5), Min the
        // least (9), Disabled none.
        for (select, expected) in [("Max", 5), ("Min", 9), ("Disabled", 10)] {
            let rules = rules(1, 10, Some(behavior(select)));
            let mut history = History::default();
            assert_eq!(
                history.decide(&rules, 2, 10, t0).replicas,
                expected,
                "{select}"
            );
        }
        // What was removed this period counts against it.
        let rules = rules(1, 10, Some(behavior("Min")));
        let mut history = History::default();
        history.scaled(10, 9, t0, &rules);
        assert_eq!(history.decide(&rules, 2, 9, t0 + seconds(30)).replicas, 9);
        assert_eq!(history.decide(&rules, 2, 9, t0 + seconds(61)).replicas, 8);
    }

    #[test]
    fn min_and_max_bound_every_decision() {
        let rules = rules(2, 4, None);
        let mut history = History::default();
        let t0 = Instant::now();
        let up = history.decide(&rules, 9, 3, t0);
        assert_eq!(up.replicas, 4);
        assert_eq!(up.limited.unwrap().0, "TooManyReplicas");
        // A count already above max comes down to it, even without a window passing.
        let mut history = History::default();
        let over = history.decide(&rules, 6, 6, t0);
        assert_eq!(over.replicas, 4);
        let mut history = History::default();
        assert_eq!(history.decide(&rules, 1, 1, t0).replicas, 2);
    }

    #[test]
    fn a_scale_up_window_takes_the_lowest_recent_recommendation() {
        let behavior = HorizontalPodAutoscalerBehavior {
            scale_up: Some(HpaScalingRules {
                stabilization_window_seconds: Some(60),
                ..Default::default()
            }),
            // No down window: a fresh autoscaler's current count would sit in both.
            scale_down: Some(HpaScalingRules {
                stabilization_window_seconds: Some(0),
                ..Default::default()
            }),
        };
        let rules = rules(1, 20, Some(behavior));
        let mut history = History::default();
        let t0 = Instant::now();
        assert_eq!(history.decide(&rules, 3, 2, t0).replicas, 3);
        // A spike to 6 within the minute: the lowest of the window (3) holds.
        let spiked = history.decide(&rules, 6, 3, t0 + seconds(20));
        assert_eq!(spiked.replicas, 3);
        assert_eq!(spiked.stabilized.unwrap().0, "ScaleUpStabilized");
        assert_eq!(history.decide(&rules, 6, 3, t0 + seconds(81)).replicas, 6);
    }
}
