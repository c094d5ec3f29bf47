//! The command channel's core (`PUT /mdm/connect`), synchronous and HTTP-free: verify the sender,
//! decode the report, store it (Idle begins a new session, so commands answered NotNow earlier
//! are offered again), hand final results to the reconciler and the identity renewal, and
//! answer with the next command's plist or an empty body.
//!
//! The Idle path is kept lean: the signature is checked with the verifier's cached fast path,
//! the session bump and last-seen time are written without an fsync, and only the queue head is
//! read.

use std::time::SystemTime;

use baton_proto::{CommandReport, Status};
use baton_store::{Report, ReportOutcome};

use crate::device_identity::{self, DeviceRequest};
use crate::device_reply::DeviceReply;
use crate::enrollment::renewal;
use crate::error_response::DeviceError;
use crate::report_bounds;
use crate::state::Services;
use crate::webhook::EventPayload;

/// Handles one command-channel request.
pub fn handle(
    services: &Services,
    request: &DeviceRequest,
    now: SystemTime,
) -> Result<DeviceReply, DeviceError> {
    let identity = device_identity::verify(&services.verifier, request, now)?;
    let mut report = CommandReport::decode(&request.body, &services.plist_limits)?;
    // Everything below (store, reconciler, renewal, webhook) sees the bounded ErrorChain.
    let mut truncated =
        report.status != Status::Idle && report_bounds::raw_body_is_truncated(&request.body);
    if let Some(chain) = report.error_chain.as_mut()
        && report_bounds::error_chain_is_truncated(chain)
    {
        *chain = report_bounds::bounded_error_chain(chain);
        truncated = true;
    }
    if truncated {
        services.metrics.report_truncated();
    }
    let id = report.enrollment.id().clone();
    let store = services.store.as_ref();
    // The certificate binding proves the device authenticated; a user channel must exist too.
    device_identity::check_binding(store, &identity, &id, now)?;
    if id.is_user_channel() && store.enrollment(&id)?.is_none() {
        return Err(DeviceError::UnknownEnrollment(id));
    }
    let outcome = store.report(
        &Report {
            id: id.clone(),
            status: report.status,
            command_uuid: report.command_uuid.clone(),
            error_chain: report.error_chain.clone().unwrap_or_default(),
            raw: if report.status == Status::Idle {
                Vec::new()
            } else {
                report_bounds::stored_raw_body(&request.body)
            },
        },
        now,
    )?;
    store.touch(&id, now)?;
    if report.status != Status::Idle && outcome == ReportOutcome::Completed {
        services.reconciler.after_report(&report, now);
        match renewal::after_report(store, &report, now) {
            Ok(Some(change)) => renewal::publish(services, &change, now),
            Ok(None) => {}
            Err(error) => tracing::warn!(enrollment_id = %id, %error,
                "recording an identity renewal result failed"),
        }
    }
    if let Some(uuid) = &report.command_uuid
        && report.status != Status::Idle
    {
        tracing::info!(enrollment_id = %id, command_uuid = %uuid, status = %report.status,
            outcome = ?outcome, "command report");
        if outcome == ReportOutcome::Completed {
            services.metrics.add_queue_depth(-1);
        }
        if let ReportOutcome::Orphan { dropped } = outcome {
            services.metrics.orphan_report_stored(dropped);
        }
        // An orphan that pushed an older one out is not sent: a device making up CommandUUIDs
        // must not turn into an unbounded stream of events (the metric counts them).
        if matches!(
            outcome,
            ReportOutcome::Completed
                | ReportOutcome::Deferred
                | ReportOutcome::Orphan { dropped: 0 }
        ) {
            let request_type = store.command(uuid)?.map(|c| c.request_type);
            services.events.record(
                &id,
                EventPayload::CommandResult {
                    command_uuid: uuid.clone(),
                    status: report.status,
                    request_type,
                    error_chain: report.error_chain.clone().unwrap_or_default(),
                },
                now,
            );
        }
    }
    if report.status == Status::Idle {
        // A new session: with app installs pending, ask how they are doing.
        services.reconciler.session_started(&id, now);
    }
    if outcome == ReportOutcome::Duplicate && report.status != Status::NotNow {
        // A result stored before: the device lost our reply and resent its cached result as
        // the first message of a new connection, instead of Idle [P MDMServerCore
        // `_pollFromServerIfNeeded:`]. That connection is a new session, as Idle would be.
        store.begin_session(&id)?;
        services.reconciler.session_started(&id, now);
    }
    let next = match store.next_command(&id)? {
        Some(command) => Some(command),
        None => closing_retry(store, &id, report.status)?,
    };
    match next {
        Some(command) => {
            tracing::debug!(enrollment_id = %id, command_uuid = %command.uuid,
                request_type = %command.request_type, "sending command");
            Ok(DeviceReply::plist(command.body))
        }
        None => Ok(DeviceReply::empty()),
    }
}

/// When nothing else is left for this session: the command answered NotNow earlier in it,
/// offered once more, unless the device's last answer was NotNow already (decision 0015).
///
/// A device polls by itself when its conditions change (it is unlocked) only if NotNow was the
/// last status it sent [NN "Understand device polling"]. Handing out the rest of the queue
/// after a NotNow makes another status the last one, and the deferred command would wait for
/// an unrelated push. Offering it again at the end gets either its result (the device was
/// unlocked meanwhile) or NotNow, after which the empty reply ends the session on NotNow.
fn closing_retry(
    store: &dyn baton_store::Store,
    id: &baton_proto::EnrollmentId,
    last_status: Status,
) -> Result<Option<baton_store::QueuedCommand>, DeviceError> {
    if last_status == Status::NotNow {
        return Ok(None);
    }
    let retry = store.next_deferred(id)?;
    if let Some(command) = &retry {
        tracing::debug!(enrollment_id = %id, command_uuid = %command.uuid,
            "offering a NotNow'd command again so the session ends on NotNow");
    }
    Ok(retry)
}
