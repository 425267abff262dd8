//! `load merge DIR...`: the results of N segments of one plan (`load run --segment i/N`)
//! joined into one `summary.json`. Counts add up exactly — iterations by status, spans by
//! fate, bytes, the target's counts, every second of the series, every scenario. Latency
//! quantiles cannot be added: the merged ones are the worst segment's (an upper bound), and
//! the merged summary says so. Segments of different plans or seeds, a segment given twice or
//! one missing are refused.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Adds every number of `from` into `into`, recursively (objects by key, arrays by position).
fn add(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Number(a), Value::Number(b)) => {
            *a = match (a.as_u64(), b.as_u64()) {
                (Some(x), Some(y)) => (x + y).into(),
                _ => serde_json::Number::from_f64(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0))
                    .unwrap_or_else(|| 0.into()),
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(slot) => add(slot, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, v) in b.iter().enumerate() {
                match a.get_mut(i) {
                    Some(slot) => add(slot, v),
                    None => a.push(v.clone()),
                }
            }
        }
        (slot @ Value::Null, v) => *slot = v.clone(),
        _ => {}
    }
}

/// Takes the larger of each number of `from` and `into`.
fn max(into: &mut Value, from: &Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        for (k, v) in b {
            let slot = a.get(k);
            if let (Some(x), Some(y)) = (slot.and_then(Value::as_u64), v.as_u64()) {
                a.insert(k.clone(), json!(x.max(y)));
            } else if let (Some(x), Some(y)) = (slot.and_then(Value::as_f64), v.as_f64()) {
                a.insert(k.clone(), json!(x.max(y)));
            }
        }
    }
}

/// Merges the summaries found in `dirs` (each a results folder of one segment).
pub fn merge(dirs: &[PathBuf]) -> Result<Value, String> {
    let mut parts = Vec::new();
    for dir in dirs {
        let path = dir.join("summary.json");
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: Value = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        parts.push((path, v));
    }
    let Some((_, first)) = parts.first() else { return Err("no results folders given".into()) };
    let count = first["segment"]["count"].as_u64().unwrap_or(1);
    let mut seen = vec![false; count as usize];
    for (path, v) in &parts {
        for key in ["plan", "seed", "pipeline", "target"] {
            if v[key] != first[key] {
                return Err(format!(
                    "{}: {key} {} differs from {}: not segments of one run",
                    path.display(),
                    v[key],
                    first[key]
                ));
            }
        }
        let (index, n) = (v["segment"]["index"].as_u64().unwrap_or(0), v["segment"]["count"].as_u64().unwrap_or(1));
        if n != count || index >= count || seen[index as usize] {
            return Err(format!(
                "{}: segment {index}/{n} is given twice or does not belong with {count} segments",
                path.display()
            ));
        }
        seen[index as usize] = true;
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(format!("segment {missing}/{count} is missing"));
    }
    let mut merged = first.clone();
    for (_, v) in &parts[1..] {
        for key in ["iterations", "spans", "bytes"] {
            add(&mut merged[key], &v[key]);
        }
        // Per second: counts add up; latency quantiles are the worst segment's.
        for (i, second) in v["per_second"].as_array().into_iter().flatten().enumerate() {
            let Some(seconds) = merged["per_second"].as_array_mut() else { break };
            if seconds.len() <= i {
                seconds.push(second.clone());
                continue;
            }
            let mut counts = second.clone();
            let latency = counts.as_object_mut().and_then(|o| o.remove("latency_us")).unwrap_or(Value::Null);
            add(&mut seconds[i], &counts);
            max(&mut seconds[i]["latency_us"], &latency);
        }
        for (i, scenario) in v["scenarios"].as_array().into_iter().flatten().enumerate() {
            for key in ["iterations", "spans", "bytes", "by_status"] {
                add(&mut merged["scenarios"][i][key], &scenario[key]);
            }
            max(&mut merged["scenarios"][i]["latency_ms"], &scenario["latency_ms"]);
        }
        for key in ["latency_ms", "generator_lateness_ms"] {
            max(&mut merged[key], &v[key]);
        }
        let elapsed = merged["elapsed_s"].as_f64().unwrap_or(0.0).max(v["elapsed_s"].as_f64().unwrap_or(0.0));
        merged["elapsed_s"] = json!(elapsed);
        merged["interrupted"] = json!(merged["interrupted"] == json!(true) || v["interrupted"] == json!(true));
    }
    merged["segment"] = json!({"index": 0, "count": 1});
    merged["merged_from"] = json!(count);
    merged["latency_is_upper_bound"] = json!(true);
    // Per-segment judgements do not carry over to the whole.
    for key in ["thresholds", "recommendations"] {
        merged[key] = json!([]);
    }
    merged["resources"] = Value::Null;
    merged["client"] = Value::Null;
    Ok(merged)
}

/// Writes the merged summary to `<out>/<UTC time>_<plan>-merged/summary.json`.
pub fn write(merged: &Value, out: &Path) -> Result<PathBuf, String> {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let plan = merged["plan"].as_str().unwrap_or("plan");
    let folder = out.join(format!("{}_{plan}-merged", crate::exec::utc_stamp(unix)));
    std::fs::create_dir_all(&folder).map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    let path = folder.join("summary.json");
    let text = serde_json::to_vec_pretty(merged).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_add_and_quantiles_take_the_worst() {
        let mut a = json!({"n": 1, "m": {"x": 2, "y": 0.5}, "s": [1, 2], "q": {"p99": 3.0}});
        add(&mut a, &json!({"n": 2, "m": {"x": 3, "z": 1}, "s": [1, 2, 3]}));
        assert_eq!(a, json!({"n": 3, "m": {"x": 5, "y": 0.5, "z": 1}, "s": [2, 4, 3], "q": {"p99": 3.0}}));
        max(&mut a["q"], &json!({"p99": 7.5}));
        assert_eq!(a["q"]["p99"], 7.5);
    }
}
