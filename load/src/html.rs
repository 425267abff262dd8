//! `report.html`: the run on one self-contained page — no script, no stylesheet or font from
//! elsewhere — with the graphs inlined as SVG and the same tables as `report.md` (pure).

use std::fmt::Write as _;

use crate::exec::Summary;
use crate::graphs::Graph;
use crate::report::{Section, intro, sections};

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:960px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
th{background:#f3f3f3}td:first-child{text-align:left}figure{margin:1em 0}figure svg{max-width:100%;height:auto}\
figcaption{font-size:.85em;color:#555}.breached{color:#b00;font-weight:bold}.note{color:#555}";

/// The anchor of a section: its title, lower-cased, runs of other characters as one dash.
pub fn anchor(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn section(out: &mut String, s: &Section) {
    let _ = writeln!(out, "<section id=\"{}\">\n<h2>{}</h2>", anchor(s.title), escape(s.title));
    if !s.head.is_empty() {
        out.push_str("<table>\n<tr>");
        for h in &s.head {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr>\n");
        for row in &s.rows {
            out.push_str("<tr>");
            for cell in row {
                let class = if cell == "BREACHED" { " class=\"breached\"" } else { "" };
                let _ = write!(out, "<td{class}>{}</td>", escape(cell));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    if !s.lines.is_empty() {
        out.push_str("<ul>\n");
        for line in &s.lines {
            let _ = writeln!(out, "<li>{}</li>", escape(line));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

/// The page: `graphs` inlined (or `missing`, why there are none), then every section.
pub fn page(s: &Summary, graphs: &[Graph], missing: Option<&str>) -> String {
    let mut out = String::new();
    let title = format!("Load run: {}", s.plan);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n<p>{}</p>",
        escape(&intro(s)),
        t = escape(&title),
    );
    out.push_str("<section id=\"graphs\">\n<h2>Graphs</h2>\n");
    if let Some(why) = missing {
        let _ = writeln!(out, "<p class=\"note\">No graphs: {}</p>", escape(why));
    }
    for g in graphs {
        let _ = writeln!(
            out,
            "<figure class=\"plot\" id=\"graph-{n}\">\n{}\n<figcaption>graphs/{n}.svg, graphs/{n}.png</figcaption>\n</figure>",
            g.svg.trim(),
            n = g.name
        );
    }
    out.push_str("</section>\n");
    for part in sections(s) {
        section(&mut out, &part);
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_anchors_are_plain() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(anchor("Latency from due time (ms)"), "latency-from-due-time-ms");
    }

    /// Every section of the summary is on the page, once, with its table's rows; a plan name
    /// that looks like markup stays text.
    #[test]
    fn the_page_carries_every_section() {
        let mut s = crate::advice::tests_support::summary();
        s.plan = "<script>alert(1)</script>".into();
        let html = page(&s, &[], Some("no font"));
        assert!(!html.contains("<script>"));
        for part in sections(&s) {
            let id = format!("<section id=\"{}\">", anchor(part.title));
            assert_eq!(html.matches(&id).count(), 1, "{id}");
        }
        let rows = html.matches("<tr>").count();
        let want: usize = sections(&s).iter().filter(|p| !p.head.is_empty()).map(|p| p.rows.len() + 1).sum();
        assert_eq!(rows, want);
        assert_eq!(html.matches("class=\"note\"").count(), 1);
    }
}
