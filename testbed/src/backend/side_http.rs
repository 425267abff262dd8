//! HTTP handling of the side channels (see [`crate::backend::side`]): receiving with fault
//! injection, exact counts and a ledger entry per request; and the query endpoints.

use super::*;
use crate::backend::side::{self, Channel};

/// `POST /api/v1/evaluations` and `POST /api/v1/tags`.
pub(super) async fn receive(state: Arc<State>, channel: Channel, request: Request<Incoming>) -> Answer {
    let started = Instant::now();
    let mut entry = LedgerEntry { endpoint: channel.label(), encoding: Some("json"), ..blank_entry() };
    lock(&state.side).request(channel);
    let decision = {
        let mut plans = lock(&state.plans);
        match plans.side.get_mut(&channel) {
            Some((plan, set)) => plan.decide(set.elapsed()),
            None => Decision { delay: Duration::ZERO, action: None },
        }
    };
    let limit = state.config.max_request_bytes;
    let read = Limited::new(request.into_body(), limit as usize).collect();
    let body = match tokio::time::timeout(state.config.body_timeout, read).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Ok(refuse(&state, entry, started, 413, "too_large", &format!("body over {limit} bytes")));
        }
        Ok(Err(_)) => return Err(CloseConnection),
        Err(_) => return Ok(refuse(&state, entry, started, 408, "body_timeout", "the body did not arrive in time")),
    };
    entry.bytes = body.len() as u64;
    let items = match side::parse(channel, &body) {
        Ok(items) => items,
        Err(e) => return Ok(refuse(&state, entry, started, 400, "invalid_body", &e.to_string())),
    };
    let count = items.len();
    entry.items = count;
    lock(&state.side).receive(channel, count);
    state.telemetry.side_items(channel, "received", count);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    entry.fault = decision.action.as_ref().map(Action::label);
    let reject = |state: &State, entry: &mut LedgerEntry, reason: String| {
        lock(&state.side).reject(channel, count);
        state.telemetry.side_items(channel, "rejected", count);
        entry.rejected_reason = Some(reason);
    };
    match decision.action {
        Some(Action::Status { code, retry_after_seconds, retry_after_http_date }) => {
            reject(&state, &mut entry, format!("status_{code}"));
            entry.status = Some(code);
            state.record(entry, started);
            let body = serde_json::to_vec(&serde_json::json!({ "error": "fault injected by the testbed" }));
            let response = respond(code, "application/json", body.unwrap_or_default());
            return Ok(with_retry_after(response, retry_after_seconds, retry_after_http_date));
        }
        Some(Action::Close) => {
            reject(&state, &mut entry, "close".into());
            state.record(entry, started);
            return Err(CloseConnection);
        }
        Some(Action::Hang { ms }) => {
            reject(&state, &mut entry, "hang".into());
            return hang(state, entry, started, ms).await;
        }
        // Refused when the plan is set: partial success and slow reads are trace-ingest faults.
        Some(Action::PartialSuccess { .. } | Action::SlowRead { .. }) | None => {}
    }
    let (accepted, duplicates) = lock(&state.side).store(items);
    state.telemetry.side_items(channel, "accepted", accepted);
    state.telemetry.side_items(channel, "duplicate", duplicates);
    entry.status = Some(200);
    state.record(entry, started);
    Ok(json(200, &serde_json::json!({ "accepted": accepted, "duplicates": duplicates })))
}

/// A request refused before its items could be counted: nothing received, an error answered.
fn refuse(
    state: &State,
    mut entry: LedgerEntry,
    started: Instant,
    status: u16,
    reason: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    entry.status = Some(status);
    entry.rejected_reason = Some(reason.to_string());
    state.record(entry, started);
    json_error(status, message)
}

/// `GET /api/v1/evaluations[?trace_id=]`, `GET /api/v1/tags?trace_id=`, `GET /api/v1/side/stats`.
pub(super) fn query(state: &State, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let pairs = query_pairs(query);
    let trace_id = pairs.iter().find(|(k, _)| k == "trace_id").map(|(_, v)| v.as_str());
    let store = lock(&state.side);
    match path {
        "/api/v1/evaluations" => json(200, &serde_json::json!({ "evaluations": store.evaluations(trace_id) })),
        "/api/v1/tags" => match trace_id {
            Some(trace) => json(200, &serde_json::json!({ "trace_id": trace, "tags": store.tags(trace) })),
            None => json_error(400, "GET /api/v1/tags needs ?trace_id="),
        },
        _ => json(
            200,
            &serde_json::json!({
                "evaluations": store.stats(Channel::Evaluations),
                "tags": store.stats(Channel::Tags),
            }),
        ),
    }
}
