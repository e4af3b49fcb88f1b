"""Generate the local stack's Prometheus and Alertmanager configuration.

The Docker Compose stack's files are the only source: deploy/prometheus/
prometheus.yml, its rules, and deploy/alertmanager/alertmanager.yml. This
module rewrites only what differs on one host without Docker:

- scrape targets: each job's ``HOST:PORT`` becomes ``127.0.0.1:PORT`` (or the
  address given for that job), and jobs that do not run locally are dropped;
- Prometheus' Alertmanager target and rule_files point at the local copies;
- Alertmanager's secret files (/run/secrets/NAME) come from a local folder and
  its template path becomes absolute.

Alert rules are copied unchanged unless ``for_overrides`` shortens the ``for``
duration of named alerts, which the end-to-end test uses to see an alert
fire within seconds.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

import yaml

DEPLOY_DIR = Path(__file__).resolve().parent.parent
PROMETHEUS_CONFIG = DEPLOY_DIR / "prometheus" / "prometheus.yml"
RULES_DIR = DEPLOY_DIR / "prometheus" / "rules"
ALERTMANAGER_CONFIG = DEPLOY_DIR / "alertmanager" / "alertmanager.yml"
ALERTMANAGER_TEMPLATES = DEPLOY_DIR / "alertmanager" / "templates"
COMPOSE_SECRETS_PREFIX = "/run/secrets/"
LOOPBACK = "127.0.0.1"

# Jobs that run on a host without Docker: the platform's services, the
# load-test exporter (during campaigns), Prometheus and Alertmanager
# themselves, and node-exporter when Debian's prometheus-node-exporter is
# started with the stack. Grafana, Loki, Alloy, Jaeger and cAdvisor run in
# Compose only.
LOCAL_JOBS = ("ingestion", "customer-success-tracker", "loadtest-exporter", "prometheus", "alertmanager",
              "node-exporter")
DEFAULT_LOCAL_JOBS = ("ingestion", "customer-success-tracker", "loadtest-exporter", "prometheus", "alertmanager")


class StackConfigError(ValueError):
    """A setting of the local stack is invalid; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class StackSettings:
    """The jobs the local stack scrapes, its ports, folders and test overrides."""

    data_dir: Path
    secrets_dir: Path
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    node_exporter_port: int = 9100
    jobs: tuple[str, ...] = DEFAULT_LOCAL_JOBS
    # job name -> "HOST:PORT", replacing 127.0.0.1 and the Compose port.
    targets: dict[str, str] = dataclasses.field(default_factory=dict)
    scrape_interval: str | None = None
    evaluation_interval: str | None = None
    # alert name -> "for" duration, e.g. {"ServiceDown": "5s"}.
    for_overrides: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def prometheus_config(self) -> Path:
        return self.data_dir / "prometheus.yml"

    @property
    def rules_dir(self) -> Path:
        return self.data_dir / "rules"

    @property
    def alertmanager_config(self) -> Path:
        return self.data_dir / "alertmanager.yml"


def compose_jobs() -> dict[str, str]:
    """Return each scrape job of the Compose configuration with its ``HOST:PORT`` target."""
    config = _load_yaml(PROMETHEUS_CONFIG)
    jobs: dict[str, str] = {}
    for scrape in config["scrape_configs"]:
        targets = [target for static in scrape.get("static_configs", []) for target in static["targets"]]
        if len(targets) != 1:
            raise StackConfigError(
                f"{PROMETHEUS_CONFIG}: job {scrape['job_name']!r} has {len(targets)} static targets; "
                "the local stack rewrites exactly one HOST:PORT per job"
            )
        jobs[scrape["job_name"]] = targets[0]
    return jobs


def local_targets(settings: StackSettings) -> dict[str, str]:
    """Return the target of every job the local stack scrapes, in the Compose file's order."""
    available = compose_jobs()
    for job in (*settings.jobs, *settings.targets):
        if job not in available:
            raise StackConfigError(
                f"unknown job {job!r}; the jobs of {PROMETHEUS_CONFIG.name} are: {', '.join(available)}"
            )
        if job not in LOCAL_JOBS and job not in settings.targets:
            raise StackConfigError(
                f"job {job!r} runs in Docker Compose only; give its address with --target {job}=HOST:PORT "
                "if it runs elsewhere"
            )
    own_ports = {
        "prometheus": settings.prometheus_port,
        "alertmanager": settings.alertmanager_port,
        "node-exporter": settings.node_exporter_port,
    }
    result: dict[str, str] = {}
    for job, compose_target in available.items():
        if job not in settings.jobs:
            continue
        if job in settings.targets:
            result[job] = settings.targets[job]
        elif job in own_ports:
            result[job] = f"{LOOPBACK}:{own_ports[job]}"
        else:
            result[job] = f"{LOOPBACK}:{compose_target.rsplit(':', 1)[1]}"
    return result


def prometheus_config(settings: StackSettings) -> dict:
    """Return the Compose Prometheus configuration rewritten for this host."""
    config = _load_yaml(PROMETHEUS_CONFIG)
    targets = local_targets(settings)
    config["scrape_configs"] = [
        _with_target(scrape, targets[scrape["job_name"]])
        for scrape in config["scrape_configs"]
        if scrape["job_name"] in targets
    ]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"{LOOPBACK}:{settings.alertmanager_port}"]}]}]}
    config["rule_files"] = [str(settings.rules_dir / "*.yml")]
    if settings.scrape_interval:
        config["global"]["scrape_interval"] = settings.scrape_interval
        config["global"]["scrape_timeout"] = settings.scrape_interval
        for scrape in config["scrape_configs"]:
            scrape.pop("scrape_interval", None)
            scrape.pop("scrape_timeout", None)
    if settings.evaluation_interval:
        config["global"]["evaluation_interval"] = settings.evaluation_interval
    return config


def alertmanager_config(settings: StackSettings) -> dict:
    """Return the Compose Alertmanager configuration with local secret files and templates."""
    config = _replace_secret_paths(_load_yaml(ALERTMANAGER_CONFIG), settings.secrets_dir)
    config["templates"] = [str(ALERTMANAGER_TEMPLATES / "*.tmpl")]
    return config


def secret_files(settings: StackSettings) -> list[Path]:
    """Return the local secret files the Alertmanager configuration reads."""
    found: list[Path] = []

    def visit(value: object) -> None:
        if isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)
        elif isinstance(value, str) and value.startswith(str(settings.secrets_dir) + "/"):
            path = Path(value)
            if path not in found:
                found.append(path)

    visit(alertmanager_config(settings))
    return found


def write_configs(settings: StackSettings) -> None:
    """Write prometheus.yml, rules/ and alertmanager.yml under the data folder."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.rules_dir.exists():
        shutil.rmtree(settings.rules_dir)
    settings.rules_dir.mkdir()
    unknown = set(settings.for_overrides)
    for source in sorted(RULES_DIR.glob("*.yml")):
        destination = settings.rules_dir / source.name
        if not settings.for_overrides:
            shutil.copyfile(source, destination)
            continue
        rules, changed = _override_for(_load_yaml(source), settings.for_overrides)
        unknown -= changed
        _dump_yaml(rules, destination)
    if unknown:
        raise StackConfigError(f"--alert-for names alerts that no rule file defines: {', '.join(sorted(unknown))}")
    _dump_yaml(prometheus_config(settings), settings.prometheus_config)
    _dump_yaml(alertmanager_config(settings), settings.alertmanager_config)


def _with_target(scrape: dict, target: str) -> dict:
    scrape = copy.deepcopy(scrape)
    scrape["static_configs"] = [{"targets": [target]}]
    return scrape


def _replace_secret_paths(value: object, secrets_dir: Path) -> object:
    if isinstance(value, dict):
        return {key: _replace_secret_paths(item, secrets_dir) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_secret_paths(item, secrets_dir) for item in value]
    if isinstance(value, str) and value.startswith(COMPOSE_SECRETS_PREFIX):
        return str(secrets_dir / value[len(COMPOSE_SECRETS_PREFIX):])
    return value


def _override_for(rules: dict, overrides: dict[str, str]) -> tuple[dict, set[str]]:
    changed: set[str] = set()
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert")
            if name in overrides:
                rule["for"] = overrides[name]
                changed.add(name)
    return rules, changed


def _load_yaml(path: Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _dump_yaml(document: dict, path: Path) -> None:
    header = "# Generated by deploy/local/stackconfig.py from the Docker Compose stack's files; do not edit.\n"
    text = yaml.safe_dump(document, sort_keys=False, width=1000, allow_unicode=True)
    path.write_text(header + text, encoding="utf-8")
