//! Decoding an OTLP/HTTP trace export: content type, `Content-Encoding: gzip` with a bound on
//! the decompressed size (a gzip bomb is refused, never inflated), protobuf or JSON, and the
//! split of the spans by project. Pure apart from the decompression; errors carry the HTTP
//! status they map to.

use std::io::Read;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;

use crate::backend::store::{Batch, SERVICE_NAME, StoredSpan, UNKNOWN_PROJECT};

/// The two encodings of OTLP/HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// From a `Content-Type` header (parameters ignored).
    pub fn from_content_type(value: Option<&str>) -> Option<Encoding> {
        let media = value?.split(';').next()?.trim().to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    /// The `Content-Type` of answers in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// `protobuf` or `json`, for the ledger.
    pub fn label(self) -> &'static str {
        match self {
            Encoding::Protobuf => "protobuf",
            Encoding::Json => "json",
        }
    }
}

/// A request that cannot be taken, and the status it gets.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// 413: larger than the limit (after decompression).
    #[error("request body is larger than the limit of {limit} bytes{after}", after = if *.compressed { " after decompression" } else { "" })]
    TooLarge {
        /// The limit.
        limit: u64,
        /// Whether the limit was hit while decompressing.
        compressed: bool,
    },
    /// 415: an encoding the server does not speak.
    #[error("unsupported Content-Encoding {0:?}; supported: gzip, identity")]
    ContentEncoding(String),
    /// 400: not valid gzip, protobuf or JSON.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// gzip, protobuf or JSON.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
}

impl DecodeError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            DecodeError::TooLarge { .. } => 413,
            DecodeError::ContentEncoding(_) => 415,
            DecodeError::Malformed { .. } => 400,
        }
    }

    /// The reason for stats and the ledger.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::ContentEncoding(_) => "unsupported_encoding",
            DecodeError::Malformed { .. } => "malformed",
        }
    }
}

/// Decompresses per `Content-Encoding`, reading at most `limit` bytes of output.
pub fn decompress(body: &[u8], content_encoding: Option<&str>, limit: u64) -> Result<Vec<u8>, DecodeError> {
    match content_encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => Ok(body.to_vec()),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::Malformed { what: "gzip", reason: e.to_string() })?;
            if out.len() as u64 > limit {
                return Err(DecodeError::TooLarge { limit, compressed: true });
            }
            Ok(out)
        }
        Some(other) => Err(DecodeError::ContentEncoding(other.to_string())),
    }
}

/// Decodes an export request.
pub fn decode(body: &[u8], encoding: Encoding) -> Result<ExportTraceServiceRequest, DecodeError> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| DecodeError::Malformed { what: "protobuf", reason: e.to_string() }),
        Encoding::Json => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(ExportTraceServiceRequest::default());
            }
            serde_json::from_slice(body).map_err(|e| DecodeError::Malformed { what: "JSON", reason: e.to_string() })
        }
    }
}

/// Splits a request into per-project batches: the project is `header_project` when given, else
/// each resource's `service.name`.
pub fn batches(request: ExportTraceServiceRequest, header_project: Option<&str>) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    for rs in request.resource_spans {
        let project = header_project.map(str::to_string).unwrap_or_else(|| {
            rs.resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == SERVICE_NAME))
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| UNKNOWN_PROJECT.to_string())
        });
        let resource = Arc::new(rs.resource);
        let mut spans = Vec::new();
        for ss in rs.scope_spans {
            let scope = Arc::new(ss.scope);
            spans.extend(ss.spans.into_iter().map(|span| StoredSpan {
                span,
                resource: Arc::clone(&resource),
                scope: Arc::clone(&scope),
            }));
        }
        match out.iter_mut().find(|b| b.project == project) {
            Some(batch) => batch.spans.extend(spans),
            None => out.push(Batch { project, spans }),
        }
    }
    out
}

/// The success answer, with `partial_success` when spans were rejected.
pub fn response(encoding: Encoding, rejected: u64, message: &str) -> Vec<u8> {
    let response = ExportTraceServiceResponse {
        partial_success: (rejected > 0)
            .then(|| ExportTracePartialSuccess { rejected_spans: rejected as i64, error_message: message.to_string() }),
    };
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        // A full success omits partialSuccess rather than sending null.
        Encoding::Json if response.partial_success.is_none() => b"{}".to_vec(),
        Encoding::Json => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The message.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The `google.rpc.Code` for an HTTP status.
pub fn rpc_code(http: u16) -> i32 {
    match http {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        404 => 5,             // NOT_FOUND
        429 => 8,             // RESOURCE_EXHAUSTED
        502 | 503 => 14,      // UNAVAILABLE
        504 => 4,             // DEADLINE_EXCEEDED
        _ => 13,              // INTERNAL
    }
}

/// An error body in the request's encoding (protobuf when it had none we know).
pub fn error_body(encoding: Option<Encoding>, http: u16, message: &str) -> (Vec<u8>, &'static str) {
    let status = RpcStatus { code: rpc_code(http), message: message.to_string() };
    match encoding {
        Some(Encoding::Json) => (
            serde_json::to_vec(&serde_json::json!({ "code": status.code, "message": status.message }))
                .unwrap_or_default(),
            "application/json",
        ),
        _ => (status.encode_to_vec(), "application/x-protobuf"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_bombs_are_refused_at_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 64 << 10, "10 MiB of zeros compress to {}", bomb.len());
        let err = decompress(&bomb, Some("gzip"), 1 << 20).unwrap_err();
        assert_eq!(err.status(), 413);
        assert_eq!(decompress(&bomb, Some("gzip"), 16 << 20).unwrap().len(), 10 << 20);
        assert_eq!(decompress(b"not gzip", Some("gzip"), 100).unwrap_err().status(), 400);
        assert_eq!(decompress(b"x", Some("br"), 100).unwrap_err().status(), 415);
    }

    #[test]
    fn content_types() {
        assert_eq!(Encoding::from_content_type(Some("application/x-protobuf")), Some(Encoding::Protobuf));
        assert_eq!(Encoding::from_content_type(Some("Application/JSON; charset=utf-8")), Some(Encoding::Json));
        assert_eq!(Encoding::from_content_type(Some("text/plain")), None);
        assert_eq!(Encoding::from_content_type(None), None);
    }

    #[test]
    fn json_mapping_hex_ids_and_string_or_number_ints() {
        let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708",
            "name":"a","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":1700000000000000001,
            "attributes":[{"key":"n","value":{"intValue":"-9223372036854775808"}}],"unknownField":true}]}]}]}"#;
        let request = decode(json.as_bytes(), Encoding::Json).unwrap();
        let b = batches(request, None);
        assert_eq!(b[0].project, "svc");
        let span = &b[0].spans[0].span;
        assert_eq!(span.trace_id, (1..=16).collect::<Vec<u8>>());
        assert_eq!(
            (span.kind, span.start_time_unix_nano, span.end_time_unix_nano),
            (2, 1_700_000_000_000_000_000, 1_700_000_000_000_000_001)
        );
        assert!(decode(b"{\"resourceSpans\": 3}", Encoding::Json).is_err());
        assert!(decode(b"", Encoding::Json).unwrap().resource_spans.is_empty());
    }
}
