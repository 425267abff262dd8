#!/usr/bin/env python3
"""The monitoring stack without Docker: Prometheus, Pushgateway and Alertmanager from their
Debian packages, on loopback ports they pick themselves, with this directory's configuration.

    python3 monitoring/stack.py start DIR [--interval 15s] [--testbed HOST:PORT] [--client HOST:PORT] [--env]
    python3 monitoring/stack.py stop DIR

`start` runs each server on 127.0.0.1:0, reads the port it bound from /proc (no port is assumed
free), waits until it answers /-/ready, and writes DIR/stack.json with the URLs and pids
(`--env` also prints them as shell exports). Prometheus runs monitoring/prometheus/prometheus.yml
with each job's targets replaced by the ports started here (the `testbed` job by --testbed and
the `client` job by --client, each dropped without its flag) and the rule files by their absolute paths; --interval sets the scrape and
rule evaluation intervals (tests use 1s). Every server keeps its state under DIR.

Exit codes: 0 done, 1 a server did not start (its log is printed), 2 bad usage.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = HERE / "alertmanager" / "alertmanager.yml"
# Liveness bound only: how long a slow, shared machine may take to start a server.
START_TIMEOUT_S = 120


class StartError(Exception):
    pass


def listening_port(pid):
    """The TCP port the process listens on, from its socket inodes and /proc/net/tcp."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    except OSError:
        return None
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            # local_address is HEXIP:HEXPORT, st 0A is LISTEN, field 9 the inode.
            if fields[3] == "0A" and fields[9] in inodes:
                return int(fields[1].rsplit(":", 1)[1], 16)
    return None


def ready(url):
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def launch(name, argv, state):
    """Starts a server on a port of its own choosing; returns (pid, url) once it is ready."""
    log = open(state / f"{name}.log", "wb")  # noqa: SIM115 -- the child keeps it
    child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            break
        port = listening_port(child.pid)
        if port and ready(f"http://127.0.0.1:{port}"):
            return child.pid, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    child.kill()
    text = (state / f"{name}.log").read_text(errors="replace")
    raise StartError(f"{name} did not become ready ({' '.join(argv)}):\n{text}")


def prometheus_config(urls, interval, testbed, own, client=None):
    """The shipped prometheus.yml with this stack's targets, rule paths and intervals."""
    config = yaml.safe_load(CONFIG.read_text())
    if interval:
        config["global"]["scrape_interval"] = interval
        config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [str((CONFIG.parent / p).resolve()) for p in config["rule_files"]]
    host = lambda url: url.split("://", 1)[1]  # noqa: E731
    for am in config["alerting"]["alertmanagers"]:
        am["static_configs"] = [{"targets": [host(urls["alertmanager"])]}]
    targets = {
        "pushgateway": host(urls["pushgateway"]),
        "alertmanager": host(urls["alertmanager"]),
        "prometheus": own,
        "testbed": testbed,
        "client": client,
    }
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name not in targets:
            raise StartError(f"{CONFIG}: job {name} has no target in stack.py")
        if targets[name]:
            job["static_configs"] = [{"targets": [targets[name]]}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    return config


def start(args):
    state = Path(args.dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    started = {}
    urls = {}
    try:
        started["pushgateway"], urls["pushgateway"] = launch(
            "pushgateway",
            [
                "prometheus-pushgateway",
                "--web.listen-address=127.0.0.1:0",
                f"--persistence.file={state / 'pushgateway.data'}",
            ],
            state,
        )
        started["alertmanager"], urls["alertmanager"] = launch(
            "alertmanager",
            [
                "prometheus-alertmanager",
                f"--config.file={ALERTMANAGER_CONFIG}",
                f"--storage.path={state / 'alertmanager'}",
                "--web.listen-address=127.0.0.1:0",
                "--cluster.listen-address=",
            ],
            state,
        )
        config_file = state / "prometheus.yml"
        # Its own port is known once it runs: started without the self-scrape, then reloaded.
        config_file.write_text(yaml.safe_dump(prometheus_config(urls, args.interval, args.testbed, None, args.client)))
        started["prometheus"], urls["prometheus"] = launch(
            "prometheus",
            [
                "prometheus",
                f"--config.file={config_file}",
                f"--storage.tsdb.path={state / 'prometheus'}",
                "--web.listen-address=127.0.0.1:0",
                "--web.enable-lifecycle",
            ],
            state,
        )
        own = urls["prometheus"].split("://", 1)[1]
        config_file.write_text(yaml.safe_dump(prometheus_config(urls, args.interval, args.testbed, own, args.client)))
        request = urllib.request.Request(f"{urls['prometheus']}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 200:
                raise StartError(f"prometheus refused its reloaded configuration: {response.status}")
    except (StartError, OSError) as error:
        for pid in started.values():
            stop_pid(pid)
        print(f"stack.py: {error}", file=sys.stderr)
        return 1
    (state / "stack.json").write_text(json.dumps({"urls": urls, "pids": started}, indent=2))
    for name, url in urls.items():
        if args.env:
            print(f"export STACK_{name.upper()}_URL={url}")
        else:
            print(f"{name} {url}")
    return 0


def stop_pid(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(args):
    stack = Path(args.dir) / "stack.json"
    if not stack.is_file():
        print(f"stack.py: no stack in {args.dir} ({stack} is missing)", file=sys.stderr)
        return 2
    for pid in json.loads(stack.read_text())["pids"].values():
        stop_pid(pid)
    stack.unlink()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("start", help="start the stack")
    up.add_argument("dir", help="state directory (data, logs, stack.json)")
    up.add_argument("--interval", help="scrape and evaluation interval, e.g. 1s (default: the config's)")
    up.add_argument("--testbed", metavar="HOST:PORT", help="a testbed serve to scrape")
    up.add_argument("--client", metavar="HOST:PORT", help="a traced application's client health to scrape")
    up.add_argument("--env", action="store_true", help="print shell exports of the URLs")
    down = commands.add_parser("stop", help="stop the stack started in DIR")
    down.add_argument("dir")
    args = parser.parse_args()
    return start(args) if args.command == "start" else stop(args)


if __name__ == "__main__":
    sys.exit(main())
