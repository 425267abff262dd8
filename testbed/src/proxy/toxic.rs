//! Toxics: what they are, and how they are read from and written to Toxiproxy's JSON.
//!
//! The JSON is Toxiproxy's, field for field: `{name, type, stream, toxicity, attributes}`, with
//! `stream` defaulting to `downstream`, `toxicity` to 1 and `name` to `<type>_<stream>`. Where
//! Toxiproxy silently ignores an attribute it does not know, or accepts a negative number or a
//! toxicity above 1, this proxy answers 400: a misspelt `latncy` must not quietly test nothing.

use serde_json::{Map, Value, json};

use super::ApiError;

/// Which way the bytes a toxic acts on flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Client → upstream (the requests).
    Upstream,
    /// Upstream → client (the responses); Toxiproxy's default.
    Downstream,
}

impl Stream {
    /// `upstream` or `downstream`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }

    fn parse(text: &str) -> Result<Stream, ApiError> {
        match text.to_ascii_lowercase().as_str() {
            "upstream" => Ok(Stream::Upstream),
            "downstream" => Ok(Stream::Downstream),
            _ => Err(ApiError::new(400, "stream was invalid, can be either upstream or downstream")),
        }
    }
}

/// A toxic's type and attributes. Times are Toxiproxy's units: milliseconds, except the
/// slicer's `delay` in microseconds; sizes in bytes; `rate` in KB/s (1 KB = 1000 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Delay every chunk by `latency` ± `jitter` ms, measured from its arrival (pipelined: a
    /// stream's throughput is not divided by the latency).
    Latency {
        /// Milliseconds added.
        latency: u64,
        /// Uniform spread either side, ms.
        jitter: u64,
    },
    /// Cap throughput at `rate` KB/s; 0 leaves it unlimited, as in Toxiproxy.
    Bandwidth {
        /// KB (1000 bytes) per second.
        rate: u64,
    },
    /// Delay the close (the FIN) by `delay` ms after the source closed.
    SlowClose {
        /// Milliseconds.
        delay: u64,
    },
    /// Drop all data; close the connection `timeout` ms after the toxic took effect (0: never,
    /// until the toxic is removed).
    Timeout {
        /// Milliseconds; 0 stalls until removed.
        timeout: u64,
    },
    /// On the first data after the toxic took effect, wait `timeout` ms and reset the
    /// connection (TCP RST to both ends).
    ResetPeer {
        /// Milliseconds.
        timeout: u64,
    },
    /// Split each chunk into writes of `average_size` ± `size_variation` bytes, `delay` µs
    /// apart.
    Slicer {
        /// Bytes per write, on average (≥ 1).
        average_size: u64,
        /// Uniform spread either side, bytes.
        size_variation: u64,
        /// Microseconds between writes.
        delay: u64,
    },
    /// Pass exactly `bytes` bytes, then close the connection.
    LimitData {
        /// Bytes passed before the close.
        bytes: u64,
    },
}

/// The types, as Toxiproxy names them (the list an unknown type's error gives).
pub const TYPES: [&str; 7] = ["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"];

impl Kind {
    /// The Toxiproxy type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Latency { .. } => "latency",
            Kind::Bandwidth { .. } => "bandwidth",
            Kind::SlowClose { .. } => "slow_close",
            Kind::Timeout { .. } => "timeout",
            Kind::ResetPeer { .. } => "reset_peer",
            Kind::Slicer { .. } => "slicer",
            Kind::LimitData { .. } => "limit_data",
        }
    }

    fn attribute_names(type_name: &str) -> Option<&'static [&'static str]> {
        Some(match type_name {
            "latency" => &["latency", "jitter"],
            "bandwidth" => &["rate"],
            "slow_close" => &["delay"],
            "timeout" | "reset_peer" => &["timeout"],
            "slicer" => &["average_size", "size_variation", "delay"],
            "limit_data" => &["bytes"],
            _ => return None,
        })
    }

    /// Builds a kind from its type name and attribute values (missing ones are 0, as in Go).
    fn build(type_name: &str, get: &dyn Fn(&str) -> u64) -> Result<Kind, ApiError> {
        let kind = match type_name {
            "latency" => Kind::Latency { latency: get("latency"), jitter: get("jitter") },
            "bandwidth" => Kind::Bandwidth { rate: get("rate") },
            "slow_close" => Kind::SlowClose { delay: get("delay") },
            "timeout" => Kind::Timeout { timeout: get("timeout") },
            "reset_peer" => Kind::ResetPeer { timeout: get("timeout") },
            "slicer" => Kind::Slicer {
                average_size: get("average_size"),
                size_variation: get("size_variation"),
                delay: get("delay"),
            },
            "limit_data" => Kind::LimitData { bytes: get("bytes") },
            _ => return Err(invalid_type(type_name)),
        };
        if let Kind::Slicer { average_size: 0, .. } = kind {
            return Err(ApiError::new(400, "bad request body: slicer needs average_size >= 1"));
        }
        Ok(kind)
    }

    fn attributes(&self) -> Value {
        match *self {
            Kind::Latency { latency, jitter } => json!({ "latency": latency, "jitter": jitter }),
            Kind::Bandwidth { rate } => json!({ "rate": rate }),
            Kind::SlowClose { delay } => json!({ "delay": delay }),
            Kind::Timeout { timeout } | Kind::ResetPeer { timeout } => json!({ "timeout": timeout }),
            Kind::Slicer { average_size, size_variation, delay } => {
                json!({ "average_size": average_size, "size_variation": size_variation, "delay": delay })
            }
            Kind::LimitData { bytes } => json!({ "bytes": bytes }),
        }
    }
}

fn invalid_type(type_name: &str) -> ApiError {
    ApiError::new(400, &format!("invalid toxic type: {type_name:?} (valid: {})", TYPES.join(", ")))
}

/// One toxic on a proxy.
#[derive(Clone, Debug, PartialEq)]
pub struct Toxic {
    /// Unique on its proxy.
    pub name: String,
    /// Type and attributes.
    pub kind: Kind,
    /// Which way it acts.
    pub stream: Stream,
    /// Probability (0 to 1) that it applies to a given connection, drawn once per connection
    /// from the proxy's seed.
    pub toxicity: f64,
}

impl Toxic {
    /// A toxic on `stream` that always applies, named `<type>_<stream>` as Toxiproxy names it.
    pub fn new(kind: Kind, stream: Stream) -> Toxic {
        Toxic { name: format!("{}_{}", kind.type_name(), stream.as_str()), kind, stream, toxicity: 1.0 }
    }

    /// The same toxic under another name.
    pub fn named(mut self, name: &str) -> Toxic {
        self.name = name.to_owned();
        self
    }

    /// The same toxic with another toxicity.
    pub fn with_toxicity(mut self, toxicity: f64) -> Toxic {
        self.toxicity = toxicity;
        self
    }

    /// Toxiproxy's JSON for it.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.kind.attributes(),
        })
    }

    /// Reads a new toxic from the body of `POST /proxies/{proxy}/toxics`.
    pub fn from_json(body: &Value) -> Result<Toxic, ApiError> {
        let object = body.as_object().ok_or_else(|| bad_body("a toxic must be a JSON object"))?;
        known_keys(object, &["name", "type", "stream", "toxicity", "attributes"], "toxic")?;
        let type_name = match object.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(_) => return Err(bad_body("type must be a string")),
            None => return Err(invalid_type("")),
        };
        let names = Kind::attribute_names(type_name).ok_or_else(|| invalid_type(type_name))?;
        let stream = match object.get("stream") {
            None | Some(Value::Null) => Stream::Downstream,
            Some(Value::String(s)) if s.is_empty() => Stream::Downstream,
            Some(Value::String(s)) => Stream::parse(s)?,
            Some(_) => return Err(bad_body("stream must be a string")),
        };
        let toxicity = match object.get("toxicity") {
            None | Some(Value::Null) => 1.0,
            Some(v) => toxicity(v)?,
        };
        let attributes = attributes(object.get("attributes"), names)?;
        let kind = Kind::build(type_name, &|key| attributes.get(key).copied().unwrap_or(0))?;
        let name = match object.get("name") {
            None | Some(Value::Null) => format!("{type_name}_{}", stream.as_str()),
            Some(Value::String(n)) if n.is_empty() => format!("{type_name}_{}", stream.as_str()),
            Some(Value::String(n)) => n.clone(),
            Some(_) => return Err(bad_body("name must be a string")),
        };
        Ok(Toxic { name, kind, stream, toxicity })
    }

    /// Applies the body of `POST /proxies/{proxy}/toxics/{toxic}`: `attributes` are merged
    /// into the current ones and `toxicity` replaced; name, type and stream stay (as in
    /// Toxiproxy).
    pub fn updated(&self, body: &Value) -> Result<Toxic, ApiError> {
        let object = body.as_object().ok_or_else(|| bad_body("a toxic update must be a JSON object"))?;
        known_keys(object, &["name", "type", "stream", "toxicity", "attributes"], "toxic")?;
        let type_name = self.kind.type_name();
        let names = Kind::attribute_names(type_name).unwrap_or(&[]);
        let given = attributes(object.get("attributes"), names)?;
        let current = self.kind.attributes();
        let kind = Kind::build(type_name, &|key| {
            given.get(key).copied().unwrap_or_else(|| current.get(key).and_then(Value::as_u64).unwrap_or(0))
        })?;
        let toxicity = match object.get("toxicity") {
            None | Some(Value::Null) => self.toxicity,
            Some(v) => toxicity(v)?,
        };
        Ok(Toxic { kind, toxicity, ..self.clone() })
    }
}

fn bad_body(message: &str) -> ApiError {
    ApiError::new(400, &format!("bad request body: {message}"))
}

fn known_keys(object: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), ApiError> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(bad_body(&format!("unknown {what} field {key:?} (valid: {})", known.join(", ")))),
        None => Ok(()),
    }
}

fn toxicity(value: &Value) -> Result<f64, ApiError> {
    match value.as_f64() {
        Some(t) if (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(bad_body("toxicity must be a number from 0 to 1")),
    }
}

fn attributes(value: Option<&Value>, names: &[&str]) -> Result<std::collections::HashMap<String, u64>, ApiError> {
    let mut out = std::collections::HashMap::new();
    let object = match value {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(bad_body("attributes must be a JSON object")),
    };
    for (key, v) in object {
        if !names.contains(&key.as_str()) {
            return Err(bad_body(&format!("unknown attribute {key:?} (valid: {})", names.join(", "))));
        }
        // Toxiproxy's attributes are integers; a float with no fraction (1000.0) is accepted.
        let n = v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 9.0e15).map(|f| f as u64))
            .ok_or_else(|| bad_body(&format!("attribute {key:?} must be a non-negative integer")))?;
        out.insert(key.clone(), n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_round_trip() {
        let t = Toxic::from_json(&json!({"type": "latency", "attributes": {"latency": 100}})).unwrap();
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(t.stream, Stream::Downstream);
        assert_eq!(t.toxicity, 1.0);
        assert_eq!(t.kind, Kind::Latency { latency: 100, jitter: 0 });
        assert_eq!(Toxic::from_json(&t.to_json()).unwrap(), t);
        let u = t.updated(&json!({"attributes": {"jitter": 5}, "toxicity": 0.5})).unwrap();
        assert_eq!(u.kind, Kind::Latency { latency: 100, jitter: 5 });
        assert_eq!(u.toxicity, 0.5);
        assert_eq!(u.name, t.name);
    }

    #[test]
    fn every_type_reads() {
        for name in TYPES {
            let attrs: Map<String, Value> =
                Kind::attribute_names(name).unwrap().iter().map(|k| (k.to_string(), json!(7))).collect();
            let t = Toxic::from_json(&json!({"type": name, "stream": "upstream", "attributes": attrs})).unwrap();
            assert_eq!(t.kind.type_name(), name);
            assert_eq!(t.stream, Stream::Upstream);
            assert_eq!(t.kind.attributes(), Value::Object(attrs));
        }
    }

    #[test]
    fn bad_toxics_are_400() {
        for body in [
            json!({"type": "lag"}),
            json!({}),
            json!({"type": "latency", "stream": "sideways"}),
            json!({"type": "latency", "toxicity": 1.5}),
            json!({"type": "latency", "attributes": {"latncy": 1}}),
            json!({"type": "latency", "attributes": {"latency": -1}}),
            json!({"type": "slicer", "attributes": {"average_size": 0}}),
            json!({"type": "latency", "colour": "red"}),
            json!([1, 2]),
        ] {
            assert_eq!(Toxic::from_json(&body).unwrap_err().status, 400, "{body}");
        }
    }
}
