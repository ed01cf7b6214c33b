//! Table-driven tests of classification, levels and history.

use std::time::Duration;

use postflight_core::{Level, Status};

use crate::{
    classify, decide, Codes, Decision, DeliveryOutcome, DeliveryRecord, History, Reason,
    Termination,
};

const HOUR: u64 = 3600;
const DAY: Duration = Duration::from_secs(24 * HOUR);
const T0: u64 = 1_700_000_000;

fn codes(success: &[i32], warning: &[i32]) -> Codes {
    Codes {
        success: success.to_vec(),
        warning: warning.to_vec(),
    }
}

#[test]
fn codes_default() {
    assert_eq!(Codes::default(), codes(&[0], &[]));
}

#[test]
fn classification_table() {
    use Status::*;
    use Termination::*;
    let default = Codes::default();
    let custom = codes(&[0, 3], &[1, 24]);
    let both = codes(&[0, 5], &[5, 6]);
    let cases: &[(Termination, &Codes, Status)] = &[
        (Exited(0), &default, Success),
        (Exited(1), &default, Failure),
        (Exited(-1), &default, Failure),
        (Exited(255), &default, Failure),
        (Exited(0), &custom, Success),
        (Exited(3), &custom, Success),
        (Exited(1), &custom, Warning),
        (Exited(24), &custom, Warning),
        (Exited(2), &custom, Failure),
        (Exited(0), &codes(&[], &[0]), Warning),
        (Exited(0), &codes(&[1], &[]), Failure),
        (Exited(5), &both, Success),
        (Exited(6), &both, Warning),
        (Signaled(9), &default, Failure),
        (Signaled(0), &codes(&[0, 9], &[15]), Failure),
        (Signaled(15), &codes(&[0, 9], &[15]), Failure),
        (TimedOut, &default, Failure),
        (TimedOut, &custom, Failure),
        (FailedToStart, &default, Failure),
        (FailedToStart, &codes(&[0, 127], &[126]), Failure),
    ];
    for (termination, codes, expected) in cases {
        assert_eq!(
            classify(termination, codes),
            *expected,
            "{termination:?} with {codes:?}"
        );
    }
}

#[test]
fn every_level_and_status() {
    use Reason::*;
    use Status::*;
    let first = History::default();
    let after = |status| History::default().after_run(status, T0 - HOUR, true);
    let n = Decision::Notify;
    let s = Decision::Skip;
    // (level, status, previous, expected)
    let cases: Vec<(Level, Status, History, Decision)> = vec![
        (Level::Never, Success, first.clone(), s(LevelNever)),
        (Level::Never, Warning, first.clone(), s(LevelNever)),
        (Level::Never, Failure, first.clone(), s(LevelNever)),
        (Level::Never, Failure, after(Success), s(LevelNever)),
        (Level::Always, Success, first.clone(), n(LevelAlways)),
        (Level::Always, Warning, first.clone(), n(LevelAlways)),
        (Level::Always, Failure, first.clone(), n(LevelAlways)),
        (Level::Always, Success, after(Success), n(LevelAlways)),
        (Level::Errors, Success, first.clone(), s(ErrorsAndSuccess)),
        (
            Level::Errors,
            Warning,
            first.clone(),
            n(ErrorsAndStatusIsProblem),
        ),
        (
            Level::Errors,
            Failure,
            first.clone(),
            n(ErrorsAndStatusIsProblem),
        ),
        (
            Level::Errors,
            Failure,
            after(Failure),
            n(ErrorsAndStatusIsProblem),
        ),
        (Level::Errors, Success, after(Failure), s(ErrorsAndSuccess)),
        (Level::Changes, Success, first.clone(), s(FirstRunSuccess)),
        (
            Level::Changes,
            Warning,
            first.clone(),
            n(FirstRunNotSuccess),
        ),
        (
            Level::Changes,
            Failure,
            first.clone(),
            n(FirstRunNotSuccess),
        ),
        (Level::Changes, Success, after(Success), s(Unchanged)),
        (Level::Changes, Warning, after(Warning), s(Unchanged)),
        (Level::Changes, Failure, after(Failure), s(Unchanged)),
    ];
    for (level, status, previous, expected) in cases {
        let got = decide(level, status, &previous, T0, None);
        assert_eq!(got, expected, "{level} / {status} after {previous:?}");
        assert_eq!(got.should_notify(), matches!(expected, Decision::Notify(_)));
    }
    // Every change between two different statuses notifies, naming both.
    for from in [Success, Warning, Failure] {
        for to in [Success, Warning, Failure] {
            if from != to {
                assert_eq!(
                    decide(Level::Changes, to, &after(from), T0, Some(DAY)),
                    n(StatusChanged { from, to })
                );
            }
        }
    }
}

/// One step of a simulated sequence of runs of one task.
struct Step {
    at: u64,
    status: Status,
    expect: Decision,
    failures: u32,
    failing_since: Option<u64>,
}

/// Runs `steps` through `decide` and `after_run` starting from a first run, checking the
/// decision and the counters after each step; returns the final history.
fn run_sequence(level: Level, remind_every: Option<Duration>, steps: &[Step]) -> History {
    let mut history = History::default();
    for (i, step) in steps.iter().enumerate() {
        let decision = decide(level, step.status, &history, step.at, remind_every);
        assert_eq!(decision, step.expect, "step {i}: decision");
        let count = history.failure_count_with(step.status);
        history = history.after_run(step.status, step.at, decision.should_notify());
        assert_eq!(
            history.consecutive_failures, step.failures,
            "step {i}: failures"
        );
        assert_eq!(count, step.failures, "step {i}: failure_count_with");
        assert_eq!(
            history.failing_since_unix, step.failing_since,
            "step {i}: since"
        );
        assert_eq!(
            history.last_status,
            Some(step.status),
            "step {i}: last status"
        );
        assert_eq!(history.last_run_unix, Some(step.at), "step {i}: last run");
    }
    history
}

#[test]
fn changes_fail_fail_succeed_notifies_twice() {
    use Status::*;
    let steps = [
        Step {
            at: T0,
            status: Failure,
            expect: Decision::Notify(Reason::FirstRunNotSuccess),
            failures: 1,
            failing_since: Some(T0),
        },
        Step {
            at: T0 + HOUR,
            status: Failure,
            expect: Decision::Skip(Reason::Unchanged),
            failures: 2,
            failing_since: Some(T0),
        },
        Step {
            at: T0 + 2 * HOUR,
            status: Success,
            expect: Decision::Notify(Reason::StatusChanged {
                from: Failure,
                to: Success,
            }),
            failures: 0,
            failing_since: None,
        },
    ];
    let history = run_sequence(Level::Changes, None, &steps);
    assert_eq!(history.last_notified_unix, Some(T0 + 2 * HOUR));
    assert_eq!(history.last_notified_status, Some(Success));
}

#[test]
fn changes_with_reminders() {
    use Status::*;
    let steps = [
        Step {
            at: T0,
            status: Failure,
            expect: Decision::Notify(Reason::FirstRunNotSuccess),
            failures: 1,
            failing_since: Some(T0),
        },
        Step {
            at: T0 + HOUR,
            status: Failure,
            expect: Decision::Skip(Reason::Unchanged),
            failures: 2,
            failing_since: Some(T0),
        },
        Step {
            at: T0 + 25 * HOUR,
            status: Failure,
            expect: Decision::Notify(Reason::Reminder),
            failures: 3,
            failing_since: Some(T0),
        },
        // The reminder restarted the interval.
        Step {
            at: T0 + 26 * HOUR,
            status: Failure,
            expect: Decision::Skip(Reason::Unchanged),
            failures: 4,
            failing_since: Some(T0),
        },
        Step {
            at: T0 + 27 * HOUR,
            status: Success,
            expect: Decision::Notify(Reason::StatusChanged {
                from: Failure,
                to: Success,
            }),
            failures: 0,
            failing_since: None,
        },
        // No reminders while succeeding, however long.
        Step {
            at: T0 + 100 * HOUR,
            status: Success,
            expect: Decision::Skip(Reason::Unchanged),
            failures: 0,
            failing_since: None,
        },
    ];
    let history = run_sequence(Level::Changes, Some(DAY), &steps);
    assert_eq!(history.last_notified_unix, Some(T0 + 27 * HOUR));
    assert_eq!(history.last_notified_status, Some(Success));
}

#[test]
fn warning_then_warning_is_unchanged() {
    use Status::*;
    let steps = [
        Step {
            at: T0,
            status: Warning,
            expect: Decision::Notify(Reason::FirstRunNotSuccess),
            failures: 0,
            failing_since: Some(T0),
        },
        Step {
            at: T0 + HOUR,
            status: Warning,
            expect: Decision::Skip(Reason::Unchanged),
            failures: 0,
            failing_since: Some(T0),
        },
        // A warning turning into a failure is a change; the streak keeps its start.
        Step {
            at: T0 + 2 * HOUR,
            status: Failure,
            expect: Decision::Notify(Reason::StatusChanged {
                from: Warning,
                to: Failure,
            }),
            failures: 1,
            failing_since: Some(T0),
        },
        // A warning resets the failure count but not the non-success streak.
        Step {
            at: T0 + 3 * HOUR,
            status: Warning,
            expect: Decision::Notify(Reason::StatusChanged {
                from: Failure,
                to: Warning,
            }),
            failures: 0,
            failing_since: Some(T0),
        },
    ];
    run_sequence(Level::Changes, Some(DAY), &steps);
}

#[test]
fn reminder_falls_back_to_streak_start_and_survives_a_clock_going_backwards() {
    use Status::*;
    // Failing since T0 under level `never`, then switched to `changes`: never notified.
    let previous =
        History::default()
            .after_run(Failure, T0, false)
            .after_run(Failure, T0 + HOUR, false);
    assert_eq!(previous.last_notified_unix, None);
    assert_eq!(previous.consecutive_failures, 2);
    let remind = Some(DAY);
    assert_eq!(
        decide(Level::Changes, Failure, &previous, T0 + 23 * HOUR, remind),
        Decision::Skip(Reason::Unchanged)
    );
    assert_eq!(
        decide(Level::Changes, Failure, &previous, T0 + 24 * HOUR, remind),
        Decision::Notify(Reason::Reminder)
    );
    // The clock went backwards: no panic, no reminder.
    assert_eq!(
        decide(Level::Changes, Failure, &previous, 0, remind),
        Decision::Skip(Reason::Unchanged)
    );
    let back = previous.after_run(Failure, 0, false);
    assert_eq!(back.failing_since_unix, Some(T0));
    // Unchanged without any reference time (hand-written history): no reminder.
    let bare = History {
        last_status: Some(Failure),
        ..History::default()
    };
    assert_eq!(
        decide(Level::Changes, Failure, &bare, T0, remind),
        Decision::Skip(Reason::Unchanged)
    );
    assert_eq!(
        bare.after_run(Failure, T0, false).failing_since_unix,
        Some(T0)
    );
}

#[test]
fn failure_count_saturates_and_history_keeps_last_delivery() {
    let delivery = DeliveryRecord {
        at_unix: T0,
        outcome: DeliveryOutcome::Delivered,
        detail: "250 2.0.0 Ok: queued as ABC".into(),
    };
    let previous = History {
        last_status: Some(Status::Failure),
        consecutive_failures: u32::MAX,
        last_delivery: Some(delivery.clone()),
        ..History::default()
    };
    assert_eq!(previous.failure_count_with(Status::Failure), u32::MAX);
    assert_eq!(previous.failure_count_with(Status::Warning), 0);
    assert_eq!(previous.failure_count_with(Status::Success), 0);
    let next = previous.after_run(Status::Failure, T0, false);
    assert_eq!(next.consecutive_failures, u32::MAX);
    assert_eq!(next.last_delivery, Some(delivery));
}

#[test]
fn decision_accessors_and_reason_text() {
    let notify = Decision::Notify(Reason::Reminder);
    let skip = Decision::Skip(Reason::Unchanged);
    assert!(notify.should_notify());
    assert!(!skip.should_notify());
    assert_eq!(notify.reason(), &Reason::Reminder);
    assert_eq!(skip.reason(), &Reason::Unchanged);
    let changed = Reason::StatusChanged {
        from: Status::Failure,
        to: Status::Success,
    };
    assert_eq!(
        changed.to_string(),
        "status changed from failure to success"
    );
    for reason in [
        Reason::LevelNever,
        Reason::LevelAlways,
        Reason::ErrorsAndStatusIsProblem,
        Reason::ErrorsAndSuccess,
        Reason::FirstRunNotSuccess,
        Reason::FirstRunSuccess,
        Reason::Unchanged,
        Reason::Reminder,
    ] {
        assert!(!reason.to_string().is_empty(), "{reason:?}");
    }
}

#[test]
fn history_json_round_trip() {
    let history = History {
        last_status: Some(Status::Warning),
        last_run_unix: Some(T0),
        consecutive_failures: 3,
        failing_since_unix: Some(T0 - DAY.as_secs()),
        last_notified_unix: Some(T0 - HOUR),
        last_notified_status: Some(Status::Failure),
        last_delivery: Some(DeliveryRecord {
            at_unix: T0 - HOUR,
            outcome: DeliveryOutcome::Queued,
            detail: "connection refused".into(),
        }),
    };
    let json = serde_json::to_string(&history).unwrap();
    assert!(json.contains(r#""last_status":"warning""#), "{json}");
    assert!(json.contains(r#""outcome":"queued""#), "{json}");
    let back: History = serde_json::from_str(&json).unwrap();
    assert_eq!(back, history);

    let empty = History::default();
    let back: History = serde_json::from_str(&serde_json::to_string(&empty).unwrap()).unwrap();
    assert_eq!(back, empty);
}

#[test]
fn history_json_is_backward_and_forward_compatible() {
    let empty: History = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, History::default());

    // An older file with only some fields, plus a field from some future version.
    let old: History = serde_json::from_str(
        r#"{"last_status":"failure","consecutive_failures":2,"some_future_field":true}"#,
    )
    .unwrap();
    assert_eq!(old.last_status, Some(Status::Failure));
    assert_eq!(old.consecutive_failures, 2);
    assert_eq!(old.last_run_unix, None);

    for (outcome, text) in [
        (DeliveryOutcome::Delivered, "\"delivered\""),
        (DeliveryOutcome::Queued, "\"queued\""),
        (DeliveryOutcome::Failed, "\"failed\""),
    ] {
        assert_eq!(serde_json::to_string(&outcome).unwrap(), text);
    }
}

#[test]
fn termination_json_round_trip() {
    for termination in [
        Termination::Exited(3),
        Termination::Signaled(9),
        Termination::TimedOut,
        Termination::FailedToStart,
    ] {
        let json = serde_json::to_string(&termination).unwrap();
        let back: Termination = serde_json::from_str(&json).unwrap();
        assert_eq!(back, termination);
    }
}
