//! The side channels of an LLM tracing SDK, as its backend serves them: evaluations
//! (`POST /api/v1/evaluations`) and trace tags (`POST /api/v1/tags`). They take the same fault
//! plans as trace ingest (`PUT /api/v1/faults?endpoint=evaluations|tags`), appear in the same
//! ledger (with their `endpoint`) and keep exact counts, so a client's side channels can be
//! held to the same accounting as its spans.
//!
//! Bodies are JSON:
//! - evaluations: `{"evaluations": [{"id": "e-1", "trace_id": "…", …}]}` — `id` (non-empty)
//!   identifies an evaluation; one sent again is counted a duplicate, not stored twice; every
//!   other field is kept as sent.
//! - tags: `{"tags": [{"trace_id": "…", "tags": ["a", "b"]}]}` — each trace keeps a set; a tag
//!   it already has is a duplicate.
//!
//! This module is the store and its pure parsing; the HTTP handling is in `server.rs`.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A side channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `POST /api/v1/evaluations`.
    Evaluations,
    /// `POST /api/v1/tags`.
    Tags,
}

impl Channel {
    /// Both channels.
    pub const ALL: [Channel; 2] = [Channel::Evaluations, Channel::Tags];

    /// The name in paths, the ledger, metrics and `?endpoint=`.
    pub fn label(self) -> &'static str {
        match self {
            Channel::Evaluations => "evaluations",
            Channel::Tags => "tags",
        }
    }

    /// The channel named `name`.
    pub fn from_label(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.label() == name)
    }
}

/// Counts of one channel. `received = accepted + duplicates + rejected`, each counted where
/// it happens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChannelStats {
    /// Requests that arrived (every answer, fault or not).
    pub requests: u64,
    /// Items in requests whose body could be parsed.
    pub received: u64,
    /// Items stored for the first time.
    pub accepted: u64,
    /// Items already stored (same evaluation id; same trace and tag).
    pub duplicates: u64,
    /// Items in parsed requests refused by a fault (error status, hang, close).
    pub rejected: u64,
}

/// A body that could not be used: 400, with this message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct BodyError(pub String);

/// A parsed request: its items, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub enum Items {
    /// Evaluations by id.
    Evaluations(Vec<(String, Value)>),
    /// (trace id, tag) pairs.
    Tags(Vec<(String, String)>),
}

impl Items {
    /// How many items.
    pub fn len(&self) -> u64 {
        match self {
            Items::Evaluations(v) => v.len() as u64,
            Items::Tags(v) => v.len() as u64,
        }
    }

    /// No items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluationsBody {
    evaluations: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsBody {
    tags: Vec<TraceTags>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceTags {
    trace_id: String,
    tags: Vec<String>,
}

/// Parses a request body of `channel`.
pub fn parse(channel: Channel, body: &[u8]) -> Result<Items, BodyError> {
    match channel {
        Channel::Evaluations => {
            let body: EvaluationsBody =
                serde_json::from_slice(body).map_err(|e| BodyError(format!("invalid evaluations body: {e}")))?;
            let mut items = Vec::with_capacity(body.evaluations.len());
            for (i, evaluation) in body.evaluations.into_iter().enumerate() {
                match evaluation.get("id").and_then(Value::as_str) {
                    Some(id) if !id.is_empty() => items.push((id.to_string(), evaluation)),
                    _ => return Err(BodyError(format!("evaluations[{i}]: `id` must be a non-empty string"))),
                }
            }
            Ok(Items::Evaluations(items))
        }
        Channel::Tags => {
            let body: TagsBody =
                serde_json::from_slice(body).map_err(|e| BodyError(format!("invalid tags body: {e}")))?;
            let mut items = Vec::new();
            for (i, trace) in body.tags.into_iter().enumerate() {
                if trace.trace_id.is_empty() {
                    return Err(BodyError(format!("tags[{i}]: `trace_id` must not be empty")));
                }
                items.extend(trace.tags.into_iter().map(|tag| (trace.trace_id.clone(), tag)));
            }
            Ok(Items::Tags(items))
        }
    }
}

/// What the side channels hold.
#[derive(Debug, Default)]
pub struct SideStore {
    evaluations: HashMap<String, Value>,
    tags: HashMap<String, BTreeSet<String>>,
    stats: HashMap<Channel, ChannelStats>,
}

impl SideStore {
    /// Counts a request of `channel`.
    pub fn request(&mut self, channel: Channel) {
        self.stats.entry(channel).or_default().requests += 1;
    }

    /// Counts the items of a parsed request.
    pub fn receive(&mut self, channel: Channel, items: u64) {
        self.stats.entry(channel).or_default().received += items;
    }

    /// Counts items refused by a fault.
    pub fn reject(&mut self, channel: Channel, items: u64) {
        self.stats.entry(channel).or_default().rejected += items;
    }

    /// Stores the items; returns (accepted, duplicates).
    pub fn store(&mut self, items: Items) -> (u64, u64) {
        let (mut accepted, mut duplicates) = (0, 0);
        let channel = match items {
            Items::Evaluations(evaluations) => {
                for (id, evaluation) in evaluations {
                    match self.evaluations.entry(id) {
                        std::collections::hash_map::Entry::Occupied(_) => duplicates += 1,
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(evaluation);
                            accepted += 1;
                        }
                    }
                }
                Channel::Evaluations
            }
            Items::Tags(tags) => {
                for (trace, tag) in tags {
                    match self.tags.entry(trace).or_default().insert(tag) {
                        true => accepted += 1,
                        false => duplicates += 1,
                    }
                }
                Channel::Tags
            }
        };
        let stats = self.stats.entry(channel).or_default();
        stats.accepted += accepted;
        stats.duplicates += duplicates;
        (accepted, duplicates)
    }

    /// A channel's counts.
    pub fn stats(&self, channel: Channel) -> ChannelStats {
        self.stats.get(&channel).copied().unwrap_or_default()
    }

    /// The evaluations stored, of one trace (`trace_id` field) or all, ordered by id.
    pub fn evaluations(&self, trace_id: Option<&str>) -> Vec<&Value> {
        let mut ids: Vec<&String> = self
            .evaluations
            .iter()
            .filter(|(_, v)| trace_id.is_none_or(|t| v.get("trace_id").and_then(Value::as_str) == Some(t)))
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids.into_iter().filter_map(|id| self.evaluations.get(id)).collect()
    }

    /// The tags of a trace, sorted.
    pub fn tags(&self, trace_id: &str) -> Vec<&str> {
        self.tags.get(trace_id).map(|set| set.iter().map(String::as_str).collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluations_are_kept_once_per_id_and_counted() {
        let mut store = SideStore::default();
        let body = br#"{"evaluations": [{"id": "a", "trace_id": "t1", "score": 0.5}, {"id": "b", "trace_id": "t2"}, {"id": "a", "trace_id": "t1"}]}"#;
        let items = parse(Channel::Evaluations, body).unwrap();
        assert_eq!(items.len(), 3);
        store.request(Channel::Evaluations);
        store.receive(Channel::Evaluations, items.len());
        assert_eq!(store.store(items), (2, 1));
        let stats = store.stats(Channel::Evaluations);
        assert_eq!((stats.requests, stats.received, stats.accepted, stats.duplicates), (1, 3, 2, 1));
        assert_eq!(store.evaluations(Some("t1")).len(), 1);
        assert_eq!(store.evaluations(Some("t1"))[0]["score"], 0.5, "the first one sent is kept");
        assert_eq!(store.evaluations(None).len(), 2);
        assert_eq!(store.stats(Channel::Tags), ChannelStats::default());
    }

    #[test]
    fn tags_are_a_set_per_trace() {
        let mut store = SideStore::default();
        let body = br#"{"tags": [{"trace_id": "t1", "tags": ["x", "y", "x"]}, {"trace_id": "t2", "tags": ["x"]}]}"#;
        assert_eq!(store.store(parse(Channel::Tags, body).unwrap()), (3, 1));
        assert_eq!(store.tags("t1"), ["x", "y"]);
        assert_eq!(store.tags("t2"), ["x"]);
        assert!(store.tags("t3").is_empty());
    }

    #[test]
    fn bad_bodies_are_refused_with_where() {
        for (channel, body) in [
            (Channel::Evaluations, &br#"{"evaluations": [{"trace_id": "t"}]}"#[..]),
            (Channel::Evaluations, br#"{"evaluations": [{"id": ""}]}"#),
            (Channel::Evaluations, br#"{"evals": []}"#),
            (Channel::Tags, br#"{"tags": [{"trace_id": "", "tags": ["a"]}]}"#),
            (Channel::Tags, br#"{"tags": [{"trace_id": "t", "tags": [1]}]}"#),
            (Channel::Tags, b"not json"),
        ] {
            assert!(parse(channel, body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(Channel::from_label("tags"), Some(Channel::Tags));
        assert_eq!(Channel::from_label("traces"), None);
    }
}
