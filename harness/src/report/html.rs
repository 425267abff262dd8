//! `report.html`: one self-contained page per run — nothing fetched — with the summary, the
//! slowest tests, a table of every test filterable by outcome, suite, marker and name, and per
//! test its attempts (phases, CPU, heap, RSS), figures, captured output and resource series
//! plotted.
//!
//! The page carries the run as the same records `report.json` holds (compact, in a
//! `<script type="application/json">`), and a small script renders them: one schema, and a
//! page that stays usable at 10,000 tests (filters toggle rows, they do not rebuild them).

use std::io::Write;

use super::RunInfo;
use crate::outcome::TestReport;

const STYLE: &str = include_str!("html/style.css");
const SCRIPT: &str = include_str!("html/report.js");

/// Renders `report.html`.
pub fn render(run: &RunInfo, reports: &[TestReport]) -> Result<Vec<u8>, String> {
    let mut html = Vec::with_capacity(reports.len() * 600 + STYLE.len() + SCRIPT.len() + 4096);
    super::json::write(&mut std::io::sink(), Some(&mut html), run, reports)
        .map_err(|e| format!("failed to encode report.html's data: {e}"))?;
    Ok(html)
}

/// The page up to its data: `{"run": ..., "tests": [...]}` follows (see `json::write`).
pub(crate) fn write_head(out: &mut dyn Write, run: &RunInfo) -> std::io::Result<()> {
    let title = escape(&format!("Test run: {}", run.binary));
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p id=\"run\"></p>\n\
         <section id=\"summary\"><h2>Summary</h2><table id=\"counts\"></table></section>\n\
         <section id=\"slowest\"><h2>Slowest tests</h2><table id=\"slow\"></table></section>\n\
         <section id=\"tests\"><h2>Tests</h2>\n<div class=\"filters\">\
         <label>outcome <select id=\"f-outcome\"><option value=\"\">all</option></select></label> \
         <label>suite <select id=\"f-suite\"><option value=\"\">all</option></select></label> \
         <label>marker <select id=\"f-marker\"><option value=\"\">all</option></select></label> \
         <label>name <input id=\"f-name\" type=\"search\"></label> <span id=\"shown\"></span></div>\n\
         <table id=\"list\"><thead><tr><th>test</th><th>suite</th><th>markers</th><th>outcome</th>\
         <th>seconds</th><th>attempts</th></tr></thead><tbody></tbody></table></section>\n\
         <section id=\"detail\" hidden><h2 id=\"d-name\"></h2><div id=\"d-body\"></div></section>\n\
         <script type=\"application/json\" id=\"data\">"
    )
}

/// Writes JSON into the page's data. `<` appears in JSON only inside strings, where `\u003c`
/// means the same: no `</script>` or `<!--` in the data can end or confuse the script element.
pub(crate) fn write_data(out: &mut dyn Write, json: &[u8]) -> std::io::Result<()> {
    for (i, chunk) in json.split(|b| *b == b'<').enumerate() {
        if i > 0 {
            out.write_all(b"\\u003c")?;
        }
        out.write_all(chunk)?;
    }
    Ok(())
}

/// The page after its data.
pub(crate) fn write_tail(out: &mut dyn Write) -> std::io::Result<()> {
    write!(out, "</script>\n<script>{SCRIPT}</script>\n</body>\n</html>\n")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

    /// Output that looks like markup cannot end the data early or inject an element.
    #[test]
    fn data_cannot_close_its_script() {
        let report = TestReport {
            name: "a::b".into(),
            markers: vec![],
            outcome: Outcome::Failed { message: "</script><script>alert(1)</script>".into() },
            attempts: vec![],
            output: "<!--<script></SCRIPT></script>".into(),
            output_bytes: 0,
            isolation: "thread".into(),
        };
        let html = String::from_utf8(render(&RunInfo::default(), &[report]).unwrap_or_default()).unwrap_or_default();
        assert_eq!(html.matches("</script>").count(), 2, "the data's and the code's own");
        let start = html.find("id=\"data\">").map(|i| i + 10).unwrap_or(0);
        let end = html[start..].find("</script>").map(|i| start + i).unwrap_or(0);
        let data: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap_or_default();
        assert_eq!(data["tests"][0]["outcome"]["message"], "</script><script>alert(1)</script>");
        assert_eq!(data["tests"][0]["output"], "<!--<script></SCRIPT></script>");
        assert!(!html[start..end].contains('<'));
    }
}
