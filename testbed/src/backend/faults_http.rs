//! The fault-plan endpoints: trace ingest's (global and per project) and each side channel's.

use super::*;
use crate::backend::side::Channel;

/// `GET`, `PUT` and `DELETE /api/v1/faults` (trace ingest) and `/api/v1/projects/{p}/faults`.
pub(super) async fn trace(
    state: &State,
    method: &Method,
    project: Option<String>,
    request: Request<Incoming>,
) -> Answer {
    match *method {
        Method::GET => {
            let plans = lock(&state.plans);
            let plan = match &project {
                Some(p) => plans.projects.get(p).map(|(a, _)| a.plan().clone()),
                None => plans.global.as_ref().map(|(a, _)| a.plan().clone()),
            };
            Ok(json(200, &plan))
        }
        Method::PUT => {
            let plan = match read_plan(request).await {
                Ok(plan) => plan,
                Err(refused) => return Ok(refused),
            };
            let active = (ActivePlan::new(plan), Instant::now());
            let mut plans = lock(&state.plans);
            match project {
                Some(p) => {
                    plans.projects.insert(p, active);
                }
                None => plans.global = Some(active),
            }
            Ok(json(200, &serde_json::json!({ "ok": true })))
        }
        Method::DELETE => {
            let mut plans = lock(&state.plans);
            match project {
                Some(p) => {
                    plans.projects.remove(&p);
                }
                None => plans.global = None,
            }
            Ok(respond(204, "application/json", Vec::new()))
        }
        _ => Ok(json_error(405, "faults take GET, PUT or DELETE")),
    }
}

/// `GET`, `PUT` and `DELETE /api/v1/faults?endpoint=evaluations|tags`.
pub(super) async fn side(state: &State, method: &Method, channel: Channel, request: Request<Incoming>) -> Answer {
    match *method {
        Method::GET => {
            let plans = lock(&state.plans);
            Ok(json(200, &plans.side.get(&channel).map(|(a, _)| a.plan().clone())))
        }
        Method::PUT => {
            let plan = match read_plan(request).await {
                Ok(plan) => plan,
                Err(refused) => return Ok(refused),
            };
            let trace_only = plan
                .rules
                .iter()
                .position(|r| matches!(r.action, Action::PartialSuccess { .. } | Action::SlowRead { .. }));
            if let Some(i) = trace_only {
                let message = format!(
                    "invalid fault plan: rule {i}: {} applies to trace ingest only; {} takes status, hang or close",
                    plan.rules[i].action.label(),
                    channel.label()
                );
                return Ok(json_error(400, &message));
            }
            lock(&state.plans).side.insert(channel, (ActivePlan::new(plan), Instant::now()));
            Ok(json(200, &serde_json::json!({ "ok": true })))
        }
        Method::DELETE => {
            lock(&state.plans).side.remove(&channel);
            Ok(respond(204, "application/json", Vec::new()))
        }
        _ => Ok(json_error(405, "faults take GET, PUT or DELETE")),
    }
}

/// A plan from a request body: read (at most 1 MiB), parsed and validated; else the 400.
async fn read_plan(request: Request<Incoming>) -> Result<FaultPlan, Response<Full<Bytes>>> {
    let body = match Limited::new(request.into_body(), 1 << 20).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Err(json_error(400, &format!("could not read the plan: {e}"))),
    };
    let plan: FaultPlan =
        serde_json::from_slice(&body).map_err(|e| json_error(400, &format!("invalid fault plan: {e}")))?;
    plan.validate().map_err(|e| json_error(400, &e.to_string()))?;
    Ok(plan)
}
