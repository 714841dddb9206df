//! Fleet scale on the local engine, through the deployed definitions and the real binaries: a
//! DR sweep of selected sources (AMIs and snapshots; some AMIs' root snapshots are tagged too,
//! as image builds often do) to 3 Regions, and at the same moment a burst of 50 image-build
//! events (whose AMIs the sweep selects too, so both race for the same copies), under AWS's
//! quota of 20 snapshot copies in flight per Region (the local AWS refuses the 21st with
//! `ResourceLimitExceeded`, as AWS does).
//!
//! 150 sources and a burst of 50 by default (600 replication executions in all, within CI's
//! time budget; docs/FAULTS.md's 1,200 are `FERRY_SCALE_SOURCES=300`);
//! `FERRY_SCALE_SOURCES=N` and `FERRY_SCALE_BURST=N` change them (a burst of 200 image builds
//! alone: `FERRY_SCALE_SOURCES=0 FERRY_SCALE_BURST=200`). moto's engine runs every execution
//! in one Python process, about two replications a second on the 2-core machine.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ferry_tests::figure;
use ferry_tests::seed::tag_value;
use ferry_tests::state_machine::{HISTORY_EVENT_LIMIT, PAYLOAD_LIMIT_BYTES};
use ferry_tests::world::{ami_available, event_fixture, policy, World, SELECTION_TAG, SOURCE};
use serde_json::{json, Value};

const REGIONS: [&str; 3] = ["us-west-2", "eu-west-1", "ap-southeast-2"];
const QUOTA: u64 = 20;
/// Long enough that, at the rate the local engine starts replications, the 20 slots of a Region
/// fill and AWS's `ResourceLimitExceeded` has to be waited out (`FERRY_SCALE_COPY_SECONDS`).
const COPY_SECONDS: f64 = 12.0;

async fn select(world: &World, ids: &[String]) {
    let tag = aws_sdk_ec2::types::Tag::builder()
        .key(SELECTION_TAG)
        .value("true")
        .build();
    for chunk in ids.chunks(100) {
        world
            .seed
            .ec2(SOURCE)
            .create_tags()
            .set_resources(Some(chunk.to_vec()))
            .tags(tag.clone())
            .send()
            .await
            .expect("CreateTags");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_to_3_regions_and_a_burst_of_image_builds_at_once_replicate_once_each_within_every_limit(
) {
    let started = Instant::now();
    let count = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let (sources, burst_size) = (
        count("FERRY_SCALE_SOURCES", 150),
        count("FERRY_SCALE_BURST", 50),
    );
    let copy_seconds = count("FERRY_SCALE_COPY_SECONDS", COPY_SECONDS as usize) as f64;
    let destinations: Vec<Value> = REGIONS
        .iter()
        .map(|r| json!({"region": r, "kmsKeyId": format!("alias/dr-{r}")}))
        .collect();
    let mut world = World::start(policy(json!(destinations), QUOTA as usize), copy_seconds).await;
    // A copy is checked every half copy, and a refused copy asks again after a quarter of a
    // copy, longer for bursts beyond 50 (on AWS: a quarter of the elapsed time, and 60-900 s
    // jittered, whose 100 attempts span hours): the retries' span keeps up with the queue.
    let burst_factor = (burst_size as f64 / 50.0).max(1.0);
    world.sfn.set_pauses(
        Duration::from_secs_f64(copy_seconds / 2.0),
        Duration::from_secs_f64(copy_seconds / 4.0 * burst_factor),
    );
    let mut keys = BTreeMap::new();
    for region in REGIONS {
        keys.insert(
            region,
            world
                .aliased_key(region, &format!("alias/dr-{region}"))
                .await,
        );
    }
    world.aws.configure(json!({"copyQuotaPerRegion": QUOTA}));

    // A third of the sweep's sources are single-volume AMIs (every other one with its root
    // snapshot tagged as well), the rest snapshots; then the image builds of the burst.
    let source_key = world.seed.key(SOURCE).await;
    let (mut selected, mut backing, mut images) = (vec![], vec![], vec![]);
    for i in 0..sources + burst_size {
        let snapshot = world.seed.snapshot(SOURCE, Some(&source_key), 8).await;
        if i % 3 == 0 || i >= sources {
            let image = world
                .seed
                .image(SOURCE, &format!("build-{i}"), &[("/dev/xvda", &snapshot)])
                .await;
            if i % 6 == 0 && i < sources {
                selected.push(snapshot.clone());
                backing.push(snapshot);
            }
            selected.push(image.clone());
            images.push(image);
        } else {
            selected.push(snapshot);
        }
    }
    select(&world, &selected).await;
    let burst: Vec<&String> = images.iter().rev().take(burst_size).collect();
    let seeded = started.elapsed();

    let mut inputs = vec![event_fixture("scheduled-event.json")];
    inputs.extend(burst.iter().map(|image| ami_available(SOURCE, image)));
    let runs = world.sfn.run_all(&inputs).await;
    let ran = started.elapsed() - seeded;

    for run in &runs {
        assert_eq!(
            (run.status.as_str(), run.error.as_deref()),
            ("SUCCEEDED", None),
            "{}: {:?}",
            run.name,
            run.cause
        );
    }
    let sweep = &runs[0];
    let distinct_sources = sources + burst_size;
    assert_eq!(
        sweep.output["replicationCount"].as_u64(),
        Some((distinct_sources * REGIONS.len()) as u64),
        "{}",
        sweep.output
    );
    assert_eq!(
        sweep.output["backingSnapshotsDropped"].as_u64(),
        Some(backing.len() as u64)
    );

    // Every replica verified under its Region's key, exactly one per (source, Region).
    let mut duplicates = 0;
    let mut replicas = 0;
    for region in REGIONS {
        let mut per_source: BTreeMap<String, usize> = BTreeMap::new();
        let images = world.seed.owned_images(region).await;
        let image_snapshots: BTreeSet<String> = images
            .iter()
            .flat_map(|i| i.block_device_mappings().iter())
            .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
            .collect();
        for image in &images {
            assert!(
                tag_value(image.tags(), "ferry:verified-at").is_some(),
                "{image:?}"
            );
            *per_source
                .entry(tag_value(image.tags(), "ferry:source-id").unwrap())
                .or_default() += 1;
        }
        for snapshot in world
            .seed
            .snapshots_tagged(region, "ferry:managed-by", "ferry")
            .await
        {
            assert_eq!(
                (snapshot.encrypted(), snapshot.kms_key_id()),
                (Some(true), Some(keys[region].arn.as_str())),
                "{snapshot:?}"
            );
            assert!(
                tag_value(snapshot.tags(), "ferry:verified-at").is_some(),
                "{snapshot:?}"
            );
            let id = snapshot.snapshot_id().unwrap_or_default();
            if !image_snapshots.contains(id) {
                let source = tag_value(snapshot.tags(), "ferry:source-id").unwrap();
                assert!(
                    !backing.contains(&source),
                    "{source} backs a selected AMI and was copied alone to {region}"
                );
                *per_source.entry(source).or_default() += 1;
            }
        }
        assert_eq!(
            per_source.len(),
            distinct_sources,
            "{region}: a replica per source"
        );
        duplicates += per_source.values().map(|n| n - 1).sum::<usize>();
        replicas += per_source.len();
    }
    assert_eq!(duplicates, 0);

    // No replication failed (for the quota or anything else); every history and payload within
    // Step Functions' limits.
    let executions: Vec<_> = runs.iter().flat_map(|r| r.executions()).collect();
    let failed: Vec<_> = runs.iter().flat_map(|r| r.failed_replications()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    let largest_history = executions.iter().map(|e| e.history_events).max().unwrap();
    let largest_payload = executions.iter().map(|e| e.largest_payload).max().unwrap();
    let largest_run_payload = runs.iter().map(|r| r.run.largest_payload).max().unwrap();
    assert!(
        largest_history < HISTORY_EVENT_LIMIT,
        "{largest_history} events"
    );
    assert!(
        largest_payload < PAYLOAD_LIMIT_BYTES,
        "{largest_payload} bytes"
    );
    assert!(
        largest_run_payload < 8 * 1024,
        "a run carries counts and keys, never the work: {largest_run_payload} bytes"
    );
    let stats = world.aws.stats();
    let peaks: Vec<u64> = REGIONS
        .iter()
        .map(|r| stats["peakCopiesInFlight"][r].as_u64().unwrap_or(0))
        .collect();
    assert!(peaks.iter().all(|&p| p <= QUOTA), "{stats}");
    let refused: u64 = REGIONS
        .iter()
        .map(|r| stats["resourceLimitExceeded"][r].as_u64().unwrap_or(0))
        .sum();
    let replication_executions: usize = runs.iter().map(|r| r.replications.len()).sum();
    let transitions: usize = runs.iter().map(|r| r.state_transitions).sum();
    figure(
        "scale",
        &format!(
            "a sweep of {sources} sources ({} AMIs, {} backing snapshots dropped) to 3 Regions with a burst of {burst_size} image events at once, copies of {copy_seconds} s: {} runs, {replication_executions} replication executions, {replicas} replicas verified, {duplicates} duplicates, 0 backing snapshots copied alone, 0 failed; largest history {largest_history} events (limit 25,000), largest state payload {largest_payload} B (run: {largest_run_payload} B; limit 256 KiB), peak copies in flight {peaks:?} (quota {QUOTA}), {refused} ResourceLimitExceeded waited out, {transitions} state transitions [seeded in {seeded:.0?}, ran in {ran:.0?}]",
            images.len(),
            backing.len(),
            runs.len(),
        ),
    );
}
