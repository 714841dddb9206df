//! Fleet benchmarks on the real planner and rules (no local AWS): `scripts/bench` runs it and
//! docs/PERFORMANCE.md reports it. Prints one JSON object.
//!
//! 1. Planning 10,000 sources × 3 Regions on the in-memory fakes: the EC2 calls the adapters
//!    would make (a page is 1,000 items), CPU time, the planner's output bytes and the work
//!    lists' bytes.
//! 2. Sweep makespan: 1,000 copies of seeded durations (log-uniform, 5 min to 4 h) to one Region
//!    under 20 slots, on a simulated clock. A copy is seen complete at the first check at or
//!    after its end, checks following `rules::polling::next_check_seconds` (with AWS's
//!    progress, as check-copy reads it); then verify, tag and FSR take `AFTER_COPY_SECONDS`.
//!    ferry's Distributed Map keeps a sliding window of 20; the previous design ran waves of
//!    20, each waiting for its slowest. Both against the lower bound max(longest copy,
//!    Σ copy time / 20).
//!
//! 3. Detection lag: for copies of 5 minutes to 48 hours, when check-copy's checks fall (as
//!    `rules::polling::next_check_seconds` spaces them, from the first wait start-copy sets) and
//!    how long after the copy completes the first check that sees it comes: with AWS's progress
//!    read as a linear percentage (what the local AWS reports) and with no progress at all.
//!
//! Run: `cargo run -p ferry-core --features fakes --release --example fleet_bench`.

use std::time::Instant;

use ferry_core::fakes::FakeWorld;
use ferry_core::policy::Policy;
use ferry_core::ports::{DeviceSnapshot, ImageInfo, SnapshotInfo, Tag};
use ferry_core::rules::polling::{next_check_seconds, PollBounds};
use ferry_core::Config;
use serde_json::json;

const SLOTS: usize = 20;
const AFTER_COPY_SECONDS: u64 = 20;

fn cpu_seconds() -> f64 {
    // CLOCK_PROCESS_CPUTIME_ID through std: the process's user + system time.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

async fn planning(sources: usize) -> serde_json::Value {
    let regions = ["us-west-2", "eu-west-1", "ap-southeast-2"];
    let policy = Policy::parse(
        &json!({
            "selection": {"tagKey": "dr", "tagValues": ["true"]},
            "requireEncryptedSource": true,
            "sourceRegions": ["us-east-1"],
            "destinations": regions.iter().map(|r| json!({"region": r, "kmsKeyId": format!("alias/dr-{r}")})).collect::<Vec<_>>(),
        })
        .to_string(),
    )
    .unwrap();
    let world = FakeWorld::new(Config {
        policy: Some(policy),
        ..Config::default()
    });
    let selected = || vec![Tag::new("dr", "true")];
    for i in 0..sources {
        if i % 2 == 0 {
            world.ec2.add_image(
                "us-east-1",
                ImageInfo {
                    image_id: format!("ami-{i:017}"),
                    state: "available".into(),
                    snapshots: (0..2)
                        .map(|d| DeviceSnapshot {
                            device_name: format!("/dev/xvd{d}"),
                            snapshot_id: format!("snap-{d}{i:016}"),
                            encrypted: true,
                        })
                        .collect(),
                    tags: selected(),
                    ..Default::default()
                },
            );
        } else {
            world.ec2.add_snapshot(
                "us-east-1",
                SnapshotInfo {
                    snapshot_id: format!("snap-9{i:016}"),
                    state: "completed".into(),
                    encrypted: true,
                    tags: selected(),
                    ..Default::default()
                },
            );
        }
    }
    let trigger = json!({"trigger": {"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012", "time": "2026-12-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}, "executionId": "arn:aws:states:us-east-1:123456789012:execution:ferry-run:bench"});
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let plan = ferry_core::handlers::plan::handle(&world.deps, trigger)
        .await
        .unwrap();
    let (cpu, wall) = (cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
    let output = serde_json::to_string(&plan).unwrap();
    json!({
        "sources": sources,
        "regions": regions.len(),
        "ec2Calls": world.ec2.total_calls(),
        "ec2CallsByAction": *world.ec2.calls.lock().unwrap(),
        "cpuSeconds": cpu,
        "wallSeconds": wall,
        "outputBytes": output.len(),
        "workListBytes": world.store.bytes_written.load(std::sync::atomic::Ordering::SeqCst),
    })
}

/// xorshift64*: seeded, reproducible.
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The times (seconds from the copy's start) of check-copy's checks of a copy of `duration`
/// seconds; the last one sees it complete. start-copy sets the first wait; each check that finds
/// the copy pending sets the next, reading AWS's progress when `progress` (a whole percentage of
/// the time elapsed, below 100 while pending, as the local AWS reports it).
fn checks(duration: u64, progress: bool) -> Vec<u64> {
    let bounds = PollBounds::default();
    let mut at = vec![next_check_seconds(0, None, bounds)];
    while let Some(&t) = at.last().filter(|&&t| t < duration) {
        let percent = progress.then(|| ((t * 100 / duration) as u32).min(99));
        at.push(t + next_check_seconds(t, percent, bounds));
    }
    at
}

/// When check-copy first sees a copy of `duration` seconds complete, counted from its start.
fn seen_complete(duration: u64) -> u64 {
    checks(duration, true).last().copied().unwrap_or(0)
}

/// Checks and detection lag by copy duration, with and without AWS's progress.
fn detection_lag() -> serde_json::Value {
    let bounds = PollBounds::default();
    let minutes = [5, 15, 30, 60, 120, 240, 480, 1440, 2880];
    let copies: Vec<_> = minutes
        .iter()
        .map(|m| {
            let duration = m * 60;
            let figures = |progress| {
                let at = checks(duration, progress);
                let seen = at.last().copied().unwrap_or(0);
                json!({"checks": at.len(), "lagSeconds": seen - duration})
            };
            json!({
                "copySeconds": duration,
                "withProgress": figures(true),
                "withoutProgress": figures(false),
            })
        })
        .collect();
    json!({"minSeconds": bounds.min_seconds, "maxSeconds": bounds.max_seconds, "copies": copies})
}

fn makespans(copies: usize, seed: u64) -> serde_json::Value {
    let mut rng = Rng(seed);
    let (low, high) = ((5.0f64 * 60.0).ln(), (4.0f64 * 3600.0).ln());
    let durations: Vec<u64> = (0..copies)
        .map(|_| (low + (high - low) * rng.next_f64()).exp() as u64)
        .collect();
    let busy: Vec<u64> = durations
        .iter()
        .map(|&d| seen_complete(d) + AFTER_COPY_SECONDS)
        .collect();
    let longest = *durations.iter().max().unwrap();
    let total: u64 = durations.iter().sum();
    let bound = longest.max(total.div_ceil(SLOTS as u64));
    // Sliding window: each replication starts when a slot frees, in work-list order.
    let mut slots = [0u64; SLOTS];
    for &b in &busy {
        let (i, &free) = slots.iter().enumerate().min_by_key(|(_, &t)| t).unwrap();
        slots[i] = free + b;
    }
    let window = *slots.iter().max().unwrap();
    // Waves: 20 at a time, the next wave after the slowest of this one.
    let waves: u64 = busy.chunks(SLOTS).map(|w| *w.iter().max().unwrap()).sum();
    json!({
        "copies": copies,
        "slots": SLOTS,
        "seed": seed,
        "longestCopySeconds": longest,
        "totalCopySeconds": total,
        "lowerBoundSeconds": bound,
        "slidingWindowSeconds": window,
        "wavesSeconds": waves,
        "slidingWindowOverBound": window as f64 / bound as f64,
        "wavesOverBound": waves as f64 / bound as f64,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let report = json!({
        "planning": planning(10_000).await,
        "makespan": makespans(1_000, 20_261_201),
        "detectionLag": detection_lag(),
    });
    // The one line the bench script reads.
    std::io::Write::write_all(&mut std::io::stdout(), format!("{report}\n").as_bytes()).unwrap();
}
