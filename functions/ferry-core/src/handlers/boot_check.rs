//! boot-check: launches one instance from the verified replica AMI (no public IP address,
//! tagged as ferry's at creation), and on each later call looks at it once: still booting is a
//! returned status (`evidence.bootCheck.status = booting`, the state machine waits
//! `nextCheckSeconds`); running with both status checks `ok` and every volume under the
//! destination key passes; anything else is a named error. The instance is terminated on every
//! verdict; `end` terminates this replication's boot-check instances after a failure (the
//! state machine's Catch), and `sweep` (the scheduled step) terminates any that outlived their
//! `ferry:boot-check-expires-at`.
//!
//! Input: the document (in-process), `{"replication": {…}, "run": "<execution ARN>"}` (the
//! state machine: the run makes RunInstances' ClientToken, so a crash-retried step gets its
//! own instance back), `{"operation": "end", "replicationId", "region"}` or
//! `{"operation": "sweep", "regions": [...]}`. Rules: [`crate::rules::boot_check`].

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::deps::Deps;
use crate::document::{BootCheck, BootCheckRequest, BootStatus, BootVolume, Replication};
use crate::error::FerryError;
use crate::handlers::{aws_failure, still_available, verified_replica, VerifiedReplica};
use crate::ports::{AwsError, InstanceInfo, LaunchRequest};
use crate::rules::boot_check::{
    boot_check_tags, check_boot_check, instance_tags, is_expired, launch_token, next_check_seconds,
    sweep_tags, timed_out, timeout_minutes, verdict, volume_findings, Verdict, MAX_LAUNCHES,
};
use crate::rules::lineage::REPLICATION_ID;

#[derive(Debug, Deserialize)]
#[serde(tag = "operation", rename_all = "camelCase", deny_unknown_fields)]
enum Operation {
    #[serde(rename_all = "camelCase")]
    End {
        replication_id: String,
        region: String,
    },
    Sweep {
        regions: Vec<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Run {
    replication: serde_json::Value,
    run: String,
}

/// One boot-check instance `end` or `sweep` terminated.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminated {
    pub region: String,
    pub instance_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BootCheckOutput {
    Document(Box<Replication>),
    Terminated { terminated: Vec<Terminated> },
}

pub async fn handle(
    deps: &Deps,
    payload: serde_json::Value,
) -> Result<BootCheckOutput, FerryError> {
    if payload.get("operation").is_some() {
        let operation: Operation = serde_json::from_value(payload).map_err(|e| {
            FerryError::invalid(
                "operation",
                format!("{e}: give {{\"operation\": \"end\", \"replicationId\", \"region\"}} or {{\"operation\": \"sweep\", \"regions\": [...]}}"),
            )
        })?;
        let terminated = match operation {
            Operation::End {
                replication_id,
                region,
            } => end(deps, &replication_id, &region).await?,
            Operation::Sweep { regions } => sweep(deps, &regions).await?,
        };
        return Ok(BootCheckOutput::Terminated { terminated });
    }
    let (document, run) = if payload.get("run").is_some() {
        let input: Run = serde_json::from_value(payload)
            .map_err(|e| FerryError::invalid("run", e.to_string()))?;
        (Replication::from_json(input.replication)?, Some(input.run))
    } else {
        (Replication::from_json(payload)?, None)
    };
    step(deps, document, run)
        .await
        .map(|d| BootCheckOutput::Document(Box::new(d)))
}

/// One look (or the launch) for a document; passes it through when it asks for no boot check.
pub async fn step(
    deps: &Deps,
    mut document: Replication,
    run: Option<String>,
) -> Result<Replication, FerryError> {
    let Some(request) = document.destination.boot_check.clone() else {
        return Ok(document);
    };
    let (kind, _) = document.source_ref()?;
    check_boot_check(Some(&request), kind == crate::document::SourceKind::Image)?;
    let replica = verified_replica(&document)?;
    let nonce = run
        .or_else(|| document.execution_id.clone())
        .unwrap_or_else(|| format!("in-process-{}", std::process::id()));
    let next = match document.evidence.boot_check.take() {
        Some(done) if done.image_id == replica.image_id && done.status == BootStatus::Passed => {
            done
        }
        Some(booting) if booting.image_id == replica.image_id => {
            look(deps, &replica, &request, booting, &nonce).await?
        }
        _ => launch(deps, &replica, &request, &nonce, 1).await?,
    };
    document.evidence.boot_check = Some(next);
    Ok(document)
}

async fn launch(
    deps: &Deps,
    replica: &VerifiedReplica,
    request: &BootCheckRequest,
    nonce: &str,
    launch: u32,
) -> Result<BootCheck, FerryError> {
    let image = still_available(deps, replica).await?;
    let now = deps.clock.now();
    let launch_request = LaunchRequest {
        image_id: replica.image_id.clone(),
        instance_type: request.instance_type.clone(),
        subnet_id: request.subnet_id.clone(),
        security_group_ids: request.security_group_ids.clone(),
        client_token: launch_token(&replica.replication_id, &replica.image_id, nonce, launch),
        tags: instance_tags(
            &replica.replication_id,
            &replica.image_id,
            now,
            timeout_minutes(request),
        ),
        delete_on_termination: image
            .snapshots
            .iter()
            .map(|s| s.device_name.clone())
            .collect(),
    };
    let instance_id = deps
        .instances
        .launch(&replica.region, &launch_request)
        .await
        .map_err(|error| launch_refused(replica, error))?;
    // Leftovers of this replication's earlier runs (stopped mid-check) go now.
    let leftovers: Vec<String> =
        live_boot_instances(deps, &replica.region, &replica.replication_id)
            .await?
            .into_iter()
            .filter(|id| *id != instance_id)
            .collect();
    terminate(deps, &replica.region, &leftovers).await?;
    info!(image_id = %replica.image_id, instance_id, launch, "boot-check instance launched");
    Ok(BootCheck {
        status: BootStatus::Booting,
        image_id: replica.image_id.clone(),
        instance_id,
        instance_type: request.instance_type.clone(),
        subnet_id: request.subnet_id.clone(),
        launches: launch,
        launched_at: now,
        running_at: None,
        status_ok_at: None,
        seconds_to_running: None,
        seconds_to_status_ok: None,
        volumes: vec![],
        terminated_at: None,
        next_check_seconds: next_check_seconds(0, deps.config.poll),
        checks: 0,
    })
}

/// RunInstances refused: a request EC2 cannot serve is named (`BootCheckLaunchRefused`, with
/// EC2's own code and message); throttling and EC2's own faults stay what they are.
fn launch_refused(replica: &VerifiedReplica, error: AwsError) -> FerryError {
    match &error {
        AwsError::Service { code, message }
            if !code.starts_with("Server.")
                && code != "InternalError"
                && code != "IdempotentParameterMismatch" =>
        {
            FerryError::BootCheckLaunchRefused {
                image_id: replica.image_id.clone(),
                region: replica.region.clone(),
                reason: format!("RunInstances: {code}: {message}"),
            }
        }
        _ => aws_failure("ec2:RunInstances", error),
    }
}

async fn look(
    deps: &Deps,
    replica: &VerifiedReplica,
    request: &BootCheckRequest,
    mut check: BootCheck,
    nonce: &str,
) -> Result<BootCheck, FerryError> {
    let region = &replica.region;
    let now = deps.clock.now();
    check.checks += 1;
    let instance = deps
        .instances
        .describe_instance(region, &check.instance_id)
        .await
        .map_err(|e| aws_failure("ec2:DescribeInstances", e))?;
    let checks = match &instance {
        Some(i) if i.state == "running" => deps
            .instances
            .status_checks(region, &check.instance_id)
            .await
            .map_err(|e| aws_failure("ec2:DescribeInstanceStatus", e))?,
        _ => None,
    };
    let result = verdict(instance.as_ref(), checks.as_ref());
    if let (Some(instance), Verdict::Booting | Verdict::Healthy) = (&instance, &result) {
        if instance.state == "running" {
            check.running_at.get_or_insert(now);
            check.volumes = volumes(deps, region, instance).await?;
            let findings = volume_findings(&check.volumes, &replica.key_arn);
            if !findings.is_empty() {
                terminate_after_failure(deps, region, &check.instance_id).await;
                return Err(FerryError::BootCheckWrongKey {
                    image_id: replica.image_id.clone(),
                    instance_id: check.instance_id.clone(),
                    expected_key_arn: replica.key_arn.clone(),
                    findings,
                });
            }
        }
    }
    match result {
        Verdict::Booting => {
            let minutes = timeout_minutes(request);
            if timed_out(check.launched_at, now, minutes) {
                terminate_after_failure(deps, region, &check.instance_id).await;
                return Err(FerryError::BootCheckTimedOut {
                    image_id: replica.image_id.clone(),
                    instance_id: check.instance_id.clone(),
                    state: describe_progress(instance.as_ref(), checks.as_ref()),
                    minutes,
                });
            }
            check.next_check_seconds =
                next_check_seconds(now.saturating_sub(check.launched_at), deps.config.poll);
            Ok(check)
        }
        Verdict::Healthy => {
            terminate(deps, region, std::slice::from_ref(&check.instance_id)).await?;
            let running_at = check.running_at.unwrap_or(now);
            check.status = BootStatus::Passed;
            check.status_ok_at = Some(now);
            check.seconds_to_running = Some(running_at.saturating_sub(check.launched_at));
            check.seconds_to_status_ok = Some(now.saturating_sub(check.launched_at));
            check.terminated_at = Some(now);
            info!(image_id = %replica.image_id, instance_id = %check.instance_id, volumes = check.volumes.len(), "boot check passed; instance terminated");
            Ok(check)
        }
        Verdict::Impaired { check: which, detail } => {
            terminate_after_failure(deps, region, &check.instance_id).await;
            Err(FerryError::BootCheckStatusFailed {
                image_id: replica.image_id.clone(),
                instance_id: check.instance_id.clone(),
                check: which,
                detail,
            })
        }
        Verdict::Refused(reason) => {
            terminate_after_failure(deps, region, &check.instance_id).await;
            Err(FerryError::BootCheckLaunchRefused {
                image_id: replica.image_id.clone(),
                region: region.clone(),
                reason: format!("instance {} ended at boot: {reason}", check.instance_id),
            })
        }
        Verdict::Vanished if check.launches < MAX_LAUNCHES => {
            warn!(instance_id = %check.instance_id, launches = check.launches, "boot-check instance ended before a verdict: launching another");
            let mut next = launch(deps, replica, request, nonce, check.launches + 1).await?;
            next.checks = check.checks;
            Ok(next)
        }
        Verdict::Vanished => Err(FerryError::BootCheckLaunchRefused {
            image_id: replica.image_id.clone(),
            region: region.clone(),
            reason: format!(
                "{} instances ended before a verdict (the last, {}, ended by someone else or not found)",
                check.launches, check.instance_id
            ),
        }),
    }
}

fn describe_progress(
    instance: Option<&InstanceInfo>,
    checks: Option<&crate::ports::StatusChecks>,
) -> String {
    match (instance, checks) {
        (Some(i), Some(c)) => format!(
            "{} with system check {} and instance check {}",
            i.state, c.system, c.instance
        ),
        (Some(i), None) => i.state.clone(),
        (None, _) => "not found".into(),
    }
}

/// The instance's volumes as DescribeVolumes reports them, by device.
async fn volumes(
    deps: &Deps,
    region: &str,
    instance: &InstanceInfo,
) -> Result<Vec<BootVolume>, FerryError> {
    let ids: Vec<String> = instance
        .volumes
        .iter()
        .map(|v| v.volume_id.clone())
        .collect();
    let found = deps
        .instances
        .describe_volumes(region, &ids)
        .await
        .map_err(|e| aws_failure("ec2:DescribeVolumes", e))?;
    Ok(instance
        .volumes
        .iter()
        .map(|attached| {
            let volume = found.iter().find(|v| v.volume_id == attached.volume_id);
            BootVolume {
                volume_id: attached.volume_id.clone(),
                device_name: attached.device_name.clone(),
                encrypted: volume.is_some_and(|v| v.encrypted),
                kms_key_id: volume.and_then(|v| v.kms_key_id.clone()),
            }
        })
        .collect())
}

async fn terminate(deps: &Deps, region: &str, ids: &[String]) -> Result<(), FerryError> {
    if ids.is_empty() {
        return Ok(());
    }
    deps.instances
        .terminate(region, ids)
        .await
        .map_err(|e| aws_failure("ec2:TerminateInstances", e))
}

/// On a failed verdict the named error matters most: a terminate that fails is logged, and the
/// state machine's `end` (or the sweep) terminates the instance.
async fn terminate_after_failure(deps: &Deps, region: &str, instance_id: &str) {
    if let Err(error) = terminate(deps, region, &[instance_id.to_string()]).await {
        warn!(instance_id, error = %error, "terminating the boot-check instance failed: the end step or the sweep terminates it");
    }
}

/// The boot-check instances of `replication_id` in `region` that are not yet ending.
async fn live_boot_instances(
    deps: &Deps,
    region: &str,
    replication_id: &str,
) -> Result<Vec<String>, FerryError> {
    Ok(deps
        .instances
        .find_instances_tagged(region, &boot_check_tags(replication_id))
        .await
        .map_err(|e| aws_failure("ec2:DescribeInstances", e))?
        .into_iter()
        .filter(|i| i.state != "shutting-down")
        .map(|i| i.instance_id)
        .collect())
}

/// After a failure: terminates every boot-check instance of `replication_id` in `region`.
pub async fn end(
    deps: &Deps,
    replication_id: &str,
    region: &str,
) -> Result<Vec<Terminated>, FerryError> {
    let ids = live_boot_instances(deps, region, replication_id).await?;
    terminate(deps, region, &ids).await?;
    if !ids.is_empty() {
        info!(replication_id, region, instances = ?ids, "boot-check instances terminated after a failure");
    }
    Ok(ids
        .into_iter()
        .map(|instance_id| Terminated {
            region: region.to_string(),
            instance_id,
            replication_id: Some(replication_id.to_string()),
        })
        .collect())
}

/// The scheduled step: terminates every ferry boot-check instance past its limit.
pub async fn sweep(deps: &Deps, regions: &[String]) -> Result<Vec<Terminated>, FerryError> {
    let now = deps.clock.now();
    let mut terminated = vec![];
    for region in regions {
        let expired: Vec<InstanceInfo> = deps
            .instances
            .find_instances_tagged(region, &sweep_tags())
            .await
            .map_err(|e| aws_failure("ec2:DescribeInstances", e))?
            .into_iter()
            .filter(|i| is_expired(i, now))
            .collect();
        let ids: Vec<String> = expired.iter().map(|i| i.instance_id.clone()).collect();
        terminate(deps, region, &ids).await?;
        for instance in expired {
            warn!(region, instance_id = %instance.instance_id, "boot-check instance past its limit: terminated");
            terminated.push(Terminated {
                region: region.clone(),
                replication_id: instance
                    .tags
                    .iter()
                    .find(|t| t.key == REPLICATION_ID)
                    .map(|t| t.value.clone()),
                instance_id: instance.instance_id,
            });
        }
    }
    Ok(terminated)
}
