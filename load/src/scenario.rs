//! GenAI scenarios: agent workflows — LLM calls, tool calls, retrievals, delegation to
//! sub-agents — that become span trees with the GenAI semantic conventions
//! (`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
//! `gen_ai.usage.input_tokens`/`output_tokens`, `gen_ai.tool.name`, `gen_ai.agent.name`, ...)
//! and realistic payloads (messages and tool results as attributes). Each iteration is one
//! trace, deterministic from (seed, iteration): sizes and token counts vary ±20% around the
//! scenario's figures.
//!
//! Four are built in, after the scale tester's mix (default weights 40/30/20/10):
//! `simple_query` (5 spans, ~35 KB), `single_service_search` (12, ~270 KB),
//! `delegated_booking` (25, ~470 KB) and `multi_service_complex` (80, ~500 KB). A plan may
//! define its own in YAML:
//!
//! ```yaml
//! scenarios:
//!   - {name: simple_query, weight: 40}          # a built-in, by name
//!   - name: triage
//!     weight: 10
//!     agent: triage-bot
//!     steps:
//!       - retrieval: {source: tickets, documents: 5, payload: 20KB}
//!       - llm: {model: gpt-4o-mini, input-tokens: 900, output-tokens: 150, payload: 12KB}
//!       - delegate:
//!           agent: escalation
//!           steps:
//!             - tool: {name: page_oncall, payload: 1KB}
//! ```

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde::Deserialize;

/// A workflow: an agent and its steps, drawn with its weight.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    /// Its name (a built-in's when `steps` is missing).
    pub name: String,
    /// Relative weight in the mix.
    pub weight: crate::plan::Rate,
    /// The root agent's name.
    #[serde(default)]
    pub agent: Option<String>,
    /// The steps; none: the built-in of that name.
    #[serde(default)]
    pub steps: Option<Vec<Step>>,
}

/// One step of a workflow.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// An LLM call (`chat`).
    Llm(Llm),
    /// A tool call (`execute_tool`).
    Tool(Tool),
    /// A retrieval from a datastore (`execute_tool`, tool type `datastore`).
    Retrieval(Retrieval),
    /// A sub-agent with steps of its own (`invoke_agent`).
    Delegate(Delegate),
}

/// An LLM call.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Llm {
    /// `gen_ai.request.model`.
    pub model: String,
    /// `gen_ai.provider.name` (default `openai`).
    #[serde(default = "openai")]
    pub provider: String,
    /// `gen_ai.usage.input_tokens`.
    pub input_tokens: u64,
    /// `gen_ai.usage.output_tokens`.
    pub output_tokens: u64,
    /// Bytes of messages recorded on the span.
    pub payload: Size,
}

fn openai() -> String {
    "openai".into()
}

/// A tool call.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Tool {
    /// `gen_ai.tool.name`.
    pub name: String,
    /// Bytes of arguments and result recorded on the span.
    pub payload: Size,
}

/// A retrieval.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Retrieval {
    /// The datastore (`gen_ai.data_source.id`).
    pub source: String,
    /// Documents returned.
    pub documents: u64,
    /// Bytes of documents recorded on the span.
    pub payload: Size,
}

/// A delegation to a sub-agent.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Delegate {
    /// `gen_ai.agent.name` of the sub-agent.
    pub agent: String,
    /// Its steps.
    pub steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    llm: Option<Llm>,
    tool: Option<Tool>,
    retrieval: Option<Retrieval>,
    delegate: Option<Delegate>,
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Step, D::Error> {
        let s = StepSpec::deserialize(d)?;
        match (s.llm, s.tool, s.retrieval, s.delegate) {
            (Some(x), None, None, None) => Ok(Step::Llm(x)),
            (None, Some(x), None, None) => Ok(Step::Tool(x)),
            (None, None, Some(x), None) => Ok(Step::Retrieval(x)),
            (None, None, None, Some(x)) => Ok(Step::Delegate(x)),
            _ => Err(serde::de::Error::custom("a step is exactly one of: llm, tool, retrieval, delegate")),
        }
    }
}

/// A size in bytes: `35KB`, `1.5MB` (1 KB = 1000 bytes) or a number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as 35KB, 1.5MB or a number of bytes")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                let t = v.trim();
                let at = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
                let n: f64 = t[..at].parse().map_err(|_| E::custom(format!("not a size: {v:?}")))?;
                let scale = match t[at..].trim() {
                    "" | "B" => 1.0,
                    "KB" => 1e3,
                    "MB" => 1e6,
                    unit => return Err(E::custom(format!("unknown size unit {unit:?} (valid: B, KB, MB)"))),
                };
                let bytes = n * scale;
                if !(bytes.is_finite() && (0.0..=64e6).contains(&bytes)) {
                    return Err(E::custom(format!("a step's payload must be at most 64MB, not {v:?}")));
                }
                Ok(Size(bytes as u64))
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn llm(model: &str, provider: &str, input: u64, output: u64, kb: u64) -> Step {
    Step::Llm(Llm {
        model: model.into(),
        provider: provider.into(),
        input_tokens: input,
        output_tokens: output,
        payload: Size(kb * 1000),
    })
}

fn tool(name: &str, kb: u64) -> Step {
    Step::Tool(Tool { name: name.into(), payload: Size(kb * 1000) })
}

fn retrieval(source: &str, documents: u64, kb: u64) -> Step {
    Step::Retrieval(Retrieval { source: source.into(), documents, payload: Size(kb * 1000) })
}

fn delegate(agent: &str, steps: Vec<Step>) -> Step {
    Step::Delegate(Delegate { agent: agent.into(), steps })
}

/// The built-in scenarios' names, in the default mix's order.
pub const BUILT_IN: [&str; 4] = ["simple_query", "single_service_search", "delegated_booking", "multi_service_complex"];

/// A built-in scenario's (agent, steps).
pub fn built_in(name: &str) -> Option<(&'static str, Vec<Step>)> {
    Some(match name {
        // 5 spans, ~35 KB: retrieve, answer, format, check.
        "simple_query" => (
            "assistant",
            vec![
                retrieval("knowledge_base", 3, 12),
                llm("gpt-4o-mini", "openai", 1200, 250, 16),
                tool("format_answer", 2),
                llm("gpt-4o-mini", "openai", 300, 40, 4),
            ],
        ),
        // 12 spans, ~270 KB: plan, three rounds of search / retrieve / reason, answer.
        "single_service_search" => {
            let mut steps = vec![llm("gpt-4o", "openai", 2000, 400, 20)];
            for _ in 0..3 {
                steps.extend([
                    tool("search_flights", 30),
                    retrieval("fares", 8, 25),
                    llm("gpt-4o", "openai", 6000, 500, 25),
                ]);
            }
            steps.push(llm("gpt-4o", "openai", 3000, 600, 10));
            ("travel-search", steps)
        }
        // 25 spans, ~470 KB: plan, three sub-agents, summarize, confirm.
        "delegated_booking" => {
            let booking = |agent: &str, tool_name: &str| {
                let mut steps = vec![llm("claude-sonnet-4", "anthropic", 2500, 300, 20)];
                for _ in 0..3 {
                    steps.extend([tool(tool_name, 25), llm("claude-sonnet-4", "anthropic", 4000, 400, 15)]);
                }
                delegate(agent, steps)
            };
            let payments = delegate(
                "payments",
                vec![
                    llm("gpt-4o-mini", "openai", 1000, 100, 15),
                    tool("authorize_card", 30),
                    tool("capture_payment", 30),
                    llm("gpt-4o-mini", "openai", 800, 120, 15),
                ],
            );
            (
                "booking-coordinator",
                vec![
                    llm("claude-sonnet-4", "anthropic", 3000, 500, 20),
                    booking("flights", "book_flight"),
                    booking("hotels", "book_hotel"),
                    payments,
                    llm("claude-sonnet-4", "anthropic", 9000, 800, 45),
                    tool("send_confirmation", 35),
                ],
            )
        }
        // 80 spans, ~500 KB: plan, five sub-agents of 14 steps each, answer, notify, audit.
        "multi_service_complex" => {
            let team = |agent: &str| {
                let steps = (0..14)
                    .map(|k| match k % 3 {
                        0 => llm("gemini-2.5-pro", "gcp.gemini", 1500, 200, 7),
                        1 => tool("query_service", 6),
                        _ => retrieval("service_docs", 4, 6),
                    })
                    .collect();
                delegate(agent, steps)
            };
            let mut steps = vec![llm("gemini-2.5-pro", "gcp.gemini", 4000, 700, 20)];
            steps.extend(["inventory", "pricing", "shipping", "support", "analytics"].map(team));
            steps.extend([llm("gemini-2.5-pro", "gcp.gemini", 8000, 900, 20), tool("notify", 5), tool("audit_log", 3)]);
            ("operations-orchestrator", steps)
        }
        _ => return None,
    })
}

/// Spans a workflow's trace has (its root included).
pub fn span_count(steps: &[Step]) -> u64 {
    1 + steps
        .iter()
        .map(|s| match s {
            Step::Delegate(d) => span_count(&d.steps),
            _ => 1,
        })
        .sum::<u64>()
}

/// The project's seeded generator (testbed's SplitMix64): sizes, token counts and the
/// scenario drawn, replayable from the seed.
pub use testbed::rng::SplitMix64 as Rng;

/// `n` ± 20%.
fn vary(rng: &mut Rng, n: u64) -> u64 {
    (n as f64 * (0.8 + 0.4 * rng.next_f64())).round() as u64
}

/// Filler text for payloads: prose-like, so compression ratios are realistic.
const FILLER: &str = "The user asked about the itinerary; the agent compared three fares, checked seat \
availability and baggage rules, then summarised the options with prices, layovers and the \
cancellation policy of each carrier before asking which one to book. ";

fn filler(rng: &mut Rng, bytes: u64) -> String {
    let mut out = String::with_capacity(bytes as usize);
    let offset = (rng.next() % FILLER.len() as u64) as usize;
    out.push_str(&FILLER[offset..]);
    while out.len() < bytes as usize {
        out.push_str(FILLER);
    }
    out.truncate(bytes as usize);
    out
}

/// A string attribute.
pub(crate) fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..KeyValue::default()
    }
}

fn int(key: &str, value: u64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(value as i64)) }),
        ..KeyValue::default()
    }
}

/// Builds one trace of a workflow: spans in depth-first order, the root first.
#[derive(Debug)]
pub struct TraceBuilder<'a> {
    trace_id: [u8; 16],
    iteration: u64,
    next_span: u64,
    clock: u64,
    rng: &'a mut Rng,
    /// The spans made so far.
    pub spans: Vec<Span>,
}

impl<'a> TraceBuilder<'a> {
    /// A builder for iteration `i` of the run seeded `seed`.
    pub fn new(seed: u64, i: u64, rng: &'a mut Rng) -> TraceBuilder<'a> {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&seed.to_be_bytes());
        trace_id[8..].copy_from_slice(&i.to_be_bytes());
        TraceBuilder {
            trace_id,
            iteration: i,
            next_span: 0,
            clock: 1_700_000_000_000_000_000 + i * 1_000_000_000,
            rng,
            spans: Vec::new(),
        }
    }

    fn id(&mut self) -> Vec<u8> {
        self.next_span += 1;
        (self.iteration.wrapping_mul(1 << 20) + self.next_span).to_be_bytes().to_vec()
    }

    fn span(&mut self, parent: &[u8], name: String, kind: i32, attributes: Vec<KeyValue>) -> Vec<u8> {
        let id = self.id();
        let start = self.clock;
        self.clock += 1_000_000 + self.rng.next() % 50_000_000;
        self.spans.push(Span {
            trace_id: self.trace_id.to_vec(),
            span_id: id.clone(),
            parent_span_id: parent.to_vec(),
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: self.clock,
            attributes,
            ..Span::default()
        });
        id
    }

    /// The agent's span and its steps' spans, under `parent` (empty: the root).
    pub fn agent(&mut self, parent: &[u8], agent: &str, steps: &[Step]) {
        let attributes = vec![text("gen_ai.operation.name", "invoke_agent"), text("gen_ai.agent.name", agent)];
        let me = self.span(parent, format!("invoke_agent {agent}"), 1, attributes);
        let at = self.spans.len() - 1;
        for step in steps {
            self.step(&me, step);
        }
        // The agent's span lasts until its last step ended.
        self.spans[at].end_time_unix_nano = self.clock;
    }

    fn step(&mut self, parent: &[u8], step: &Step) {
        match step {
            Step::Llm(l) => {
                let bytes = vary(self.rng, l.payload.0);
                let input = filler(self.rng, bytes * 3 / 4);
                let output = filler(self.rng, bytes - bytes * 3 / 4);
                let (tin, tout) = (vary(self.rng, l.input_tokens), vary(self.rng, l.output_tokens));
                let attributes = vec![
                    text("gen_ai.operation.name", "chat"),
                    text("gen_ai.provider.name", l.provider.as_str()),
                    text("gen_ai.request.model", l.model.as_str()),
                    text("gen_ai.response.model", l.model.as_str()),
                    int("gen_ai.usage.input_tokens", tin),
                    int("gen_ai.usage.output_tokens", tout),
                    text("gen_ai.input.messages", input),
                    text("gen_ai.output.messages", output),
                ];
                self.span(parent, format!("chat {}", l.model), 3, attributes);
            }
            Step::Tool(t) => {
                let bytes = vary(self.rng, t.payload.0);
                let attributes = vec![
                    text("gen_ai.operation.name", "execute_tool"),
                    text("gen_ai.tool.name", t.name.as_str()),
                    text("gen_ai.tool.type", "function"),
                    text("gen_ai.tool.call.arguments", filler(self.rng, bytes / 4)),
                    text("gen_ai.tool.call.result", filler(self.rng, bytes - bytes / 4)),
                ];
                self.span(parent, format!("execute_tool {}", t.name), 1, attributes);
            }
            Step::Retrieval(r) => {
                let bytes = vary(self.rng, r.payload.0);
                let attributes = vec![
                    text("gen_ai.operation.name", "execute_tool"),
                    text("gen_ai.tool.name", format!("retrieve_{}", r.source)),
                    text("gen_ai.tool.type", "datastore"),
                    text("gen_ai.data_source.id", r.source.as_str()),
                    int("gen_ai.retrieval.documents", r.documents),
                    text("gen_ai.tool.call.result", filler(self.rng, bytes)),
                ];
                self.span(parent, format!("execute_tool retrieve_{}", r.source), 3, attributes);
            }
            Step::Delegate(d) => self.agent(parent, &d.agent, &d.steps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The built-ins have the span counts and (within 15%) the sizes the scale tester names.
    #[test]
    fn built_ins_match_their_figures() {
        for (name, spans, kb) in [
            ("simple_query", 5, 35.0),
            ("single_service_search", 12, 270.0),
            ("delegated_booking", 25, 470.0),
            ("multi_service_complex", 80, 500.0),
        ] {
            let (agent, steps) = built_in(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(span_count(&steps), spans, "{name}");
            let mut sizes = Vec::new();
            for i in 0..50 {
                let mut rng = Rng(i);
                let mut b = TraceBuilder::new(1, i, &mut rng);
                b.agent(&[], agent, &steps);
                assert_eq!(b.spans.len() as u64, spans);
                sizes.push(b.spans.iter().map(|s| s.encoded_len()).sum::<usize>() as f64 / 1000.0);
            }
            let mean = sizes.iter().sum::<f64>() / sizes.len() as f64;
            assert!((mean / kb - 1.0).abs() < 0.15, "{name}: {mean:.0} KB, expected ~{kb}");
        }
    }

    #[test]
    fn traces_are_trees_and_replay_from_the_seed() {
        let (agent, steps) = built_in("delegated_booking").unwrap_or_else(|| panic!("built-in"));
        let build = |seed: u64| {
            let mut rng = Rng(seed);
            let mut b = TraceBuilder::new(seed, 3, &mut rng);
            b.agent(&[], agent, &steps);
            b.spans
        };
        let spans = build(5);
        assert_eq!(spans, build(5));
        assert_ne!(spans, build(6));
        let ids: std::collections::HashSet<&Vec<u8>> = spans.iter().map(|s| &s.span_id).collect();
        assert_eq!(ids.len(), spans.len());
        assert!(spans[0].parent_span_id.is_empty());
        assert!(spans[1..].iter().all(|s| ids.contains(&s.parent_span_id)), "every parent is in the trace");
        assert!(spans.iter().all(|s| s.end_time_unix_nano >= s.start_time_unix_nano));
        let agents = spans.iter().filter(|s| s.name.starts_with("invoke_agent")).count();
        assert_eq!(agents, 4, "the coordinator and three sub-agents");
    }

    #[test]
    fn scenarios_read_from_yaml() {
        let yaml = "- {name: simple_query, weight: 40}\n- name: triage\n  weight: 10\n  agent: triage-bot\n  steps:\n    - retrieval: {source: tickets, documents: 5, payload: 20KB}\n    - llm: {model: m, input-tokens: 9, output-tokens: 1, payload: 1.5KB}\n    - delegate:\n        agent: escalation\n        steps:\n          - tool: {name: page, payload: 100}\n";
        let scenarios: Vec<Scenario> = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scenarios[0].steps, None);
        let steps = scenarios[1].steps.as_ref().unwrap_or_else(|| panic!("steps"));
        assert_eq!(span_count(steps), 5);
        assert_eq!(steps[1], llm_step("m", 9, 1, 1500));
        for bad in [
            "- {name: x, weight: 1, steps: [{lml: {model: m}}]}",
            "- {name: x, weight: 1, steps: [{tool: {name: t, payload: 1KB}, llm: {model: m, input-tokens: 1, output-tokens: 1, payload: 1}}]}",
            "- {name: x, weight: 1, steps: [{tool: {name: t, payload: 3 parsecs}}]}",
            "- {name: x, weight: -1}",
        ] {
            assert!(serde_yaml::from_str::<Vec<Scenario>>(bad).is_err(), "{bad}");
        }
    }

    fn llm_step(model: &str, input: u64, output: u64, bytes: u64) -> Step {
        Step::Llm(Llm {
            model: model.into(),
            provider: "openai".into(),
            input_tokens: input,
            output_tokens: output,
            payload: Size(bytes),
        })
    }
}
