"""Run Prometheus and Alertmanager on this host without Docker.

They use the Docker Compose stack's configuration, rules and Alertmanager
routing, rewritten for this host as stackconfig.py describes. The binaries
are Debian's (``apt-get install prometheus prometheus-alertmanager``, and
optionally ``prometheus-node-exporter``). They scrape services that run on
this host, by default on the same ports as in Compose. Start the services
first, e.g. ``unmogrowp up``, then run deploy/local/run-stack.sh. It runs in
the foreground until Ctrl-C or SIGTERM, and stops what it started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from stackconfig import (
    DEFAULT_LOCAL_JOBS,
    LOCAL_JOBS,
    LOOPBACK,
    StackConfigError,
    StackSettings,
    secret_files,
    write_configs,
)

REPOSITORY_DIR = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0

# The Debian packages name the Alertmanager binary prometheus-alertmanager;
# upstream releases name it alertmanager. The same holds for node-exporter.
BINARIES = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "amtool": ("amtool",),
    "node-exporter": ("prometheus-node-exporter", "node_exporter"),
}


class StackError(RuntimeError):
    """The stack failed to start or stopped; the message names the cause and the fix."""


def find_binary(name: str) -> str:
    for candidate in BINARIES[name]:
        path = shutil.which(candidate)
        if path:
            return path
    raise StackError(
        f"{' or '.join(BINARIES[name])} not found on PATH; install Debian's packages with "
        "deploy/local/install-prometheus.sh (apt-get install prometheus prometheus-alertmanager "
        "prometheus-node-exporter) or put upstream binaries on PATH"
    )


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="deploy/local/run-stack.sh",
        description="Run Prometheus and Alertmanager with the UnMoGrowP rules and routing on this host, "
        "scraping services on 127.0.0.1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--prometheus-port", type=int, default=9090, help="port Prometheus listens on")
    parser.add_argument("--alertmanager-port", type=int, default=9093, help="port Alertmanager listens on")
    parser.add_argument("--node-exporter-port", type=int, default=9100,
                        help="port node-exporter listens on, with --with-node-exporter")
    parser.add_argument("--with-node-exporter", action="store_true",
                        help="also start Debian's prometheus-node-exporter and scrape it (host CPU, memory, disk)")
    parser.add_argument("--jobs", default=",".join(DEFAULT_LOCAL_JOBS),
                        help=f"comma-separated scrape jobs to run, out of: {', '.join(LOCAL_JOBS)}")
    parser.add_argument("--target", action="append", default=[], metavar="JOB=HOST:PORT",
                        help="scrape JOB at HOST:PORT instead of 127.0.0.1 on its Compose port; repeatable")
    parser.add_argument("--data-dir", type=Path, default=REPOSITORY_DIR / "var" / "monitoring",
                        help="folder for the generated configuration, the TSDB and Alertmanager's state")
    parser.add_argument("--secrets-dir", type=Path, default=REPOSITORY_DIR / "deploy" / "secrets",
                        help="folder of the secret files Alertmanager reads (slack_webhook_url, smtp_password); "
                        "deploy/activate-monitoring.sh --secrets-only creates them")
    parser.add_argument("--scrape-interval", help="override the scrape interval of every job, e.g. 2s")
    parser.add_argument("--evaluation-interval", help="override the rule evaluation interval, e.g. 2s")
    parser.add_argument("--alert-for", action="append", default=[], metavar="ALERT=DURATION",
                        help="shorten the 'for' duration of ALERT, e.g. ServiceDown=5s (for tests); repeatable")
    parser.add_argument("--check", action="store_true",
                        help="write and check the configuration (promtool, amtool), then exit without starting")
    return parser.parse_args(argv)


def settings_from(arguments: argparse.Namespace) -> StackSettings:
    jobs = [job.strip() for job in arguments.jobs.split(",") if job.strip()]
    if arguments.with_node_exporter and "node-exporter" not in jobs:
        jobs.append("node-exporter")
    return StackSettings(
        data_dir=arguments.data_dir.resolve(),
        secrets_dir=arguments.secrets_dir.resolve(),
        prometheus_port=arguments.prometheus_port,
        alertmanager_port=arguments.alertmanager_port,
        node_exporter_port=arguments.node_exporter_port,
        jobs=tuple(jobs),
        targets=_pairs(arguments.target, "--target", "JOB=HOST:PORT"),
        scrape_interval=arguments.scrape_interval,
        evaluation_interval=arguments.evaluation_interval,
        for_overrides=_pairs(arguments.alert_for, "--alert-for", "ALERT=DURATION"),
    )


def _pairs(values: list[str], option: str, form: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, separator, item = value.partition("=")
        if not separator or not key or not item:
            raise StackConfigError(f"{option} {value!r} is invalid; write it as {form}")
        pairs[key] = item
    return pairs


def check_configs(settings: StackSettings) -> None:
    """Run promtool and amtool on the generated files; raise StackError with their output."""
    checks = [
        [find_binary("promtool"), "check", "config", str(settings.prometheus_config)],
        [find_binary("amtool"), "check-config", str(settings.alertmanager_config)],
    ]
    for command in checks:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


def check_port_free(port: int, option: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError as error:
            raise StackError(f"port {port} on {LOOPBACK} is in use ({error.strerror}); stop what listens "
                             f"there (ss -ltnp) or pass {option} with a free port") from None


class Stack:
    """The child processes of the stack, each logging to a file under the data folder."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, command: list[str]) -> None:
        log_path = self.settings.data_dir / f"{name}.log"
        with log_path.open("ab") as log:
            self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL)
        self.logs[name] = log_path
        print(f"started {name} (pid {self.processes[name].pid}), log: {log_path}", flush=True)

    def wait_ready(self, name: str, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.raise_if_exited()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        print(f"{name} is ready: {url}", flush=True)
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise StackError(f"{name} was not ready within {READY_TIMEOUT_S:.0f} s ({url}); "
                         f"its log {self.logs[name]} ends with:\n{self.log_tail(name)}")

    def raise_if_exited(self) -> None:
        for name, process in self.processes.items():
            code = process.poll()
            if code is not None:
                raise StackError(f"{name} exited with status {code}; its log {self.logs[name]} ends with:\n"
                                 f"{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 20) -> str:
        text = self.logs[name].read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop within {STOP_TIMEOUT_S:.0f} s; killing it", file=sys.stderr)
                process.kill()
                process.wait()


def run(settings: StackSettings) -> int:
    prometheus_bin = find_binary("prometheus")
    alertmanager_bin = find_binary("alertmanager")
    node_exporter_bin = find_binary("node-exporter") if "node-exporter" in settings.jobs else None

    write_configs(settings)
    check_configs(settings)
    for path in secret_files(settings):
        if not path.exists():
            print(f"warning: {path} does not exist, so notifications that need it fail; create it "
                  "(deploy/activate-monitoring.sh --secrets-only) and fill it in", file=sys.stderr)

    check_port_free(settings.prometheus_port, "--prometheus-port")
    check_port_free(settings.alertmanager_port, "--alertmanager-port")
    if node_exporter_bin:
        check_port_free(settings.node_exporter_port, "--node-exporter-port")

    stack = Stack(settings)

    def stop_on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop_on_signal)
    try:
        alertmanager_url = f"http://{LOOPBACK}:{settings.alertmanager_port}"
        stack.start("alertmanager", [
            alertmanager_bin,
            f"--config.file={settings.alertmanager_config}",
            f"--storage.path={settings.data_dir / 'alertmanager-data'}",
            f"--web.listen-address={LOOPBACK}:{settings.alertmanager_port}",
            # A single instance: no gossip port on every interface.
            "--cluster.listen-address=",
        ])
        if node_exporter_bin:
            # The textfile folder lets a cron job add figures; it is empty by default.
            textfile_dir = settings.data_dir / "node-exporter-textfile"
            textfile_dir.mkdir(exist_ok=True)
            stack.start("node-exporter", [
                node_exporter_bin,
                f"--web.listen-address={LOOPBACK}:{settings.node_exporter_port}",
                f"--collector.textfile.directory={textfile_dir}",
            ])
        prometheus_url = f"http://{LOOPBACK}:{settings.prometheus_port}"
        stack.start("prometheus", [
            prometheus_bin,
            f"--config.file={settings.prometheus_config}",
            f"--storage.tsdb.path={settings.data_dir / 'prometheus-data'}",
            "--storage.tsdb.retention.time=30d",
            "--enable-feature=exemplar-storage",
            "--web.enable-lifecycle",
            f"--web.listen-address={LOOPBACK}:{settings.prometheus_port}",
        ])
        stack.wait_ready("alertmanager", f"{alertmanager_url}/-/ready")
        stack.wait_ready("prometheus", f"{prometheus_url}/-/ready")
        if node_exporter_bin:
            stack.wait_ready("node-exporter", f"http://{LOOPBACK}:{settings.node_exporter_port}/metrics")
        # Debian's packages ship Prometheus' classic pages only and Alertmanager without its web
        # interface, so the links below are the ones that work on this stack.
        print(f"\nPrometheus   {prometheus_url}  (targets: {prometheus_url}/classic/targets, "
              f"alerts: {prometheus_url}/classic/alerts)\n"
              f"Alertmanager {alertmanager_url}  (no web pages: amtool --alertmanager.url={alertmanager_url} alert query)\n"
              f"Configuration and data: {settings.data_dir}\nStop with Ctrl-C.", flush=True)
        while True:
            stack.raise_if_exited()
            time.sleep(1)
    except KeyboardInterrupt:
        print("stopping the stack", flush=True)
        return 0
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        settings = settings_from(arguments)
        if arguments.check:
            write_configs(settings)
            check_configs(settings)
            print(f"configuration written to {settings.data_dir} and checked with promtool and amtool")
            return 0
        return run(settings)
    except (StackConfigError, StackError) as error:
        print(f"run-stack: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
