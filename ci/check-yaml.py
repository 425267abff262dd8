#!/usr/bin/env python3
"""Parses every YAML file given (all documents of each) and, for GitHub workflow files
(--workflow), checks that secrets reach steps only as environment variables: every
`${{ secrets.* }}` must be the whole value of a key under an `env:` mapping, never part of a
`run:` script, a `with:` input or anything else.

    python3 ci/check-yaml.py FILE... [--workflow FILE...]

Prints one line per problem (file and key path) and the counts. Exit 0 clean, 1 a problem.
"""

import re
import sys

import yaml

SECRET = re.compile(r"\$\{\{\s*secrets\.")
WHOLE = re.compile(r"\$\{\{\s*secrets\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}")


def secrets_outside_env(node, path, problems):
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and SECRET.search(value):
                in_env = len(path) > 0 and path[-1] == "env"
                if not (in_env and WHOLE.fullmatch(value.strip())):
                    problems.append("/".join(map(str, path + [key])))
            else:
                secrets_outside_env(value, path + [key], problems)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, str) and SECRET.search(value):
                problems.append("/".join(map(str, path + [index])))
            else:
                secrets_outside_env(value, path + [index], problems)


def main(argv):
    files, workflows, target = [], [], None
    for arg in argv:
        if arg == "--workflow":
            target = workflows
        else:
            (target if target is not None else files).append(arg)
    failed = 0
    documents = 0
    for name in files + workflows:
        try:
            with open(name, encoding="utf-8") as handle:
                docs = list(yaml.safe_load_all(handle))
        except (OSError, yaml.YAMLError) as error:
            print(f"{name}: {error}")
            failed += 1
            continue
        documents += len(docs)
        if name in workflows:
            problems = []
            for doc in docs:
                secrets_outside_env(doc, [], problems)
            for where in problems:
                print(f"{name}: {where}: a secret used outside an env: value")
            failed += len(problems)
    print(f"check-yaml.py: {len(files) + len(workflows)} files, {documents} documents, "
          f"{len(workflows)} workflows; {failed} problem(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
