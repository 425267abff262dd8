#!/usr/bin/env python3
"""Fails when a target that `cargo test` skips (`test = false`) holds libtest tests.

`test = false` on a target means nothing compiles its `#[test]` functions: they silently never
run (the suites' own config tests were lost that way). Every .rs file in the directory of such
a target's root is checked. Reads `cargo metadata` on stdin; exit 1 names each file.
"""
import json
import pathlib
import re
import sys

TESTS = re.compile(r"#\[(test|cfg\(test\))\]")
meta = json.load(sys.stdin)
targets = [(p, t) for p in meta["packages"] for t in p["targets"]]
# A file that is itself the root of a tested target is that target's business.
tested_roots = {pathlib.Path(t["src_path"]) for _, t in targets if t.get("test", True)}
bad = []
for package, target in targets:
    if target.get("test", True):
        continue
    for path in sorted(pathlib.Path(target["src_path"]).parent.glob("*.rs")):
        if path not in tested_roots and TESTS.search(path.read_text(encoding="utf-8")):
            bad.append(f"{path}: has #[test] code, but target {target['name']} of {package['name']} sets test = false")
for line in sorted(set(bad)):
    print(line, file=sys.stderr)
sys.exit(1 if bad else 0)
