//! Toxiproxy's HTTP API over the [`Collection`], on hyper (as the backend), plus the ledger.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::collection::Collection;
use super::toxic::Toxic;
use super::{ApiError, ProxySpec, VERSION};

/// Largest API request body; the API takes small JSON documents.
const MAX_BODY: usize = 1 << 20;

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    collection: Arc<Collection>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let collection = Arc::clone(&collection);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |request| {
                let collection = Arc::clone(&collection);
                async move { Ok::<_, std::convert::Infallible>(handle(&collection, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(15))
                .serve_connection(io, service)
                .await;
        });
    }
}

fn respond(status: u16, body: Option<Value>) -> Response<Full<Bytes>> {
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap_or_default()).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status != 204 {
        response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    }
    response
}

fn error(e: &ApiError) -> Response<Full<Bytes>> {
    respond(e.status, Some(json!({ "error": e.message, "status": e.status })))
}

fn answer(result: Result<(u16, Option<Value>), ApiError>) -> Response<Full<Bytes>> {
    match result {
        Ok((status, body)) => respond(status, body),
        Err(e) => error(&e),
    }
}

async fn body_json(request: Request<Incoming>) -> Result<Value, ApiError> {
    let bytes = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| ApiError::new(413, &format!("request body over {MAX_BODY} bytes or unreadable")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| ApiError::new(400, &format!("bad request body: {e}")))
}

async fn handle(collection: &Collection, request: Request<Incoming>) -> Response<Full<Bytes>> {
    // As Toxiproxy: a browser may not drive the API (a web page could otherwise reach it).
    let ua = request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ua.starts_with("Mozilla/") {
        return error(&ApiError::new(403, "user agent not allowed"));
    }
    let path: Vec<String> = request
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let method = request.method().clone();
    let update = method == Method::POST || method == Method::PATCH;
    answer(match (path.as_slice(), &method) {
        (["version"], &Method::GET) => Ok((200, Some(json!({ "version": VERSION })))),
        (["reset"], &Method::POST) => collection.reset().map(|()| (204, None)),
        (["proxies"], &Method::GET) => Ok((200, Some(collection.index()))),
        (["proxies"], &Method::POST) => match body_json(request).await.and_then(|b| ProxySpec::from_json(&b)) {
            Ok(spec) => collection.create(spec).map(|p| (201, Some(p))),
            Err(e) => Err(e),
        },
        (["populate"], &Method::POST) => return populate(collection, request).await,
        (["proxies", name], &Method::GET) => collection.show(name).map(|p| (200, Some(p))),
        (["proxies", name], _) if update => match body_json(request).await {
            Ok(body) => collection.update(name, &body).await.map(|p| (200, Some(p))),
            Err(e) => Err(e),
        },
        (["proxies", name], &Method::DELETE) => collection.delete(name).await.map(|()| (204, None)),
        (["proxies", name, "toxics"], &Method::GET) => {
            collection.toxics(name).map(|t| (200, Some(Value::Array(t.iter().map(Toxic::to_json).collect()))))
        }
        (["proxies", name, "toxics"], &Method::POST) => {
            // The proxy must exist before the body is judged (404 before 400, as Toxiproxy).
            match collection.show(name) {
                Err(e) => Err(e),
                Ok(_) => match body_json(request).await.and_then(|b| Toxic::from_json(&b)) {
                    Ok(toxic) => collection.add_toxic(name, toxic).map(|t| (200, Some(t.to_json()))),
                    Err(e) => Err(e),
                },
            }
        }
        (["proxies", name, "toxics", toxic], &Method::GET) => {
            collection.toxic(name, toxic).map(|t| (200, Some(t.to_json())))
        }
        (["proxies", name, "toxics", toxic], _) if update => match body_json(request).await {
            Ok(body) => collection.update_toxic(name, toxic, &body).map(|t| (200, Some(t.to_json()))),
            Err(e) => Err(e),
        },
        (["proxies", name, "toxics", toxic], &Method::DELETE) => {
            collection.remove_toxic(name, toxic).map(|()| (204, None))
        }
        (["proxies", name, "connections"], &Method::GET) => collection
            .connections(name)
            .map(|(conns, dropped)| (200, Some(json!({ "dropped": dropped, "connections": conns })))),
        (["version" | "reset" | "proxies" | "populate", ..], _) => Err(ApiError::new(405, "method not allowed")),
        _ => Err(ApiError::new(404, "not found")),
    })
}

/// `POST /populate`: a list of proxies; 201 `{"proxies": [...]}`, or the error's status with
/// `{"error", "status", "proxies"}` listing those made before it.
async fn populate(collection: &Collection, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match body_json(request).await {
        Ok(body) => body,
        Err(e) => return error(&e),
    };
    let Some(items) = body.as_array() else {
        return error(&ApiError::new(400, "bad request body: populate takes a JSON array of proxies"));
    };
    let mut specs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match ProxySpec::from_json(item) {
            Ok(spec) => specs.push(spec),
            Err(e) => return error(&ApiError::new(e.status, &format!("{} (proxy {})", e.message, i + 1))),
        }
    }
    let (made, failed) = collection.populate(specs).await;
    match failed {
        None => respond(201, Some(json!({ "proxies": made }))),
        Some(e) => respond(e.status, Some(json!({ "error": e.message, "status": e.status, "proxies": made }))),
    }
}
