use super::*;

fn guard(min_requests: u32) -> CanaryGuard {
    CanaryGuard::new(
        Arc::from("orders"),
        GuardSettings {
            window: Duration::from_secs(10),
            min_requests,
            max_error_ratio: 2.0,
            max_p99_ratio: 1.5,
        },
        Events::default(),
    )
}

const MS: Duration = Duration::from_millis(10);

#[tokio::test(start_paused = true)]
async fn injected_5xx_trip_it_once_min_requests_are_in() {
    let g = guard(20);
    for _ in 0..200 {
        g.record(Side::Primary, false, Some(MS));
    }
    for i in 0..19 {
        g.record(Side::Canary, true, Some(MS));
        assert!(
            !g.tripped(),
            "below min_requests after {} canary answers",
            i + 1
        );
    }
    g.record(Side::Canary, true, Some(MS));
    assert!(g.tripped());
    assert!(g.take_unpublished());
    assert!(!g.take_unpublished());
}

#[tokio::test(start_paused = true)]
async fn a_healthy_canary_holds() {
    let g = guard(20);
    // The primary fails 2 %, the canary 3 % (within 2 × 2 % + 1 point); the canary is a bit
    // slower and its first answer (a cold connection) very slow, which p99 shrugs off.
    for i in 0..400 {
        g.record(Side::Primary, i % 50 == 0, Some(MS));
    }
    g.record(Side::Canary, false, Some(Duration::from_secs(1)));
    for i in 0..150 {
        g.record(Side::Canary, i % 34 == 33, Some(MS * 11 / 10));
    }
    assert!(!g.tripped(), "{:?}", g.figures());
}

#[tokio::test(start_paused = true)]
async fn a_slow_canary_trips_on_p99() {
    let g = guard(20);
    for _ in 0..200 {
        g.record(Side::Primary, false, Some(MS));
    }
    for _ in 0..99 {
        g.record(Side::Canary, false, Some(MS * 3));
    }
    assert!(!g.tripped(), "fewer than 100 timed answers: no p99 yet");
    g.record(Side::Canary, false, Some(MS * 3));
    assert!(g.tripped());
}

#[tokio::test(start_paused = true)]
async fn without_a_timed_baseline_latency_decides_nothing() {
    let g = guard(20);
    for _ in 0..5 {
        g.record(Side::Primary, false, Some(MS));
    }
    for _ in 0..50 {
        g.record(Side::Canary, false, Some(MS * 10));
    }
    assert!(!g.tripped());
    // ... but errors with no primary traffic at all still trip (error-free baseline).
    let g = guard(20);
    for _ in 0..20 {
        g.record(Side::Canary, true, None);
    }
    assert!(g.tripped());
}

#[tokio::test(start_paused = true)]
async fn old_answers_leave_the_window_and_reset_starts_afresh() {
    let g = guard(20);
    for _ in 0..15 {
        g.record(Side::Canary, true, Some(MS));
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    for i in 0..100 {
        g.record(Side::Primary, i % 20 == 0, Some(MS));
    }
    for _ in 0..19 {
        g.record(Side::Canary, false, Some(MS));
    }
    g.record(Side::Canary, true, Some(MS));
    assert!(
        !g.tripped(),
        "1 error in 20 against 5 in 100: the old ones left the window"
    );
    g.trip();
    assert!(g.tripped());
    g.reset();
    assert!(!g.tripped());
    assert_eq!(g.figures().1.total, 0);
}

#[test]
fn latency_buckets_are_monotonic_and_bounded() {
    let mut last = 0;
    for micros in [
        0u64,
        100,
        250,
        300,
        1_000,
        10_000,
        1_000_000,
        60_000_000,
        u64::MAX / 2,
    ] {
        let b = latency_bucket(Duration::from_micros(micros));
        assert!(b >= last && b < LATENCY_BUCKETS);
        last = b;
    }
    assert!(bucket_upper_micros(latency_bucket(Duration::from_millis(10))) >= 10_000.0);
}
