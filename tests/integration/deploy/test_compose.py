"""deploy/docker-compose.yml against the Compose specification and the stack's requirements.

The Compose specification's JSON schema comes from the check-jsonschema
package, which vendors it from the compose-spec/compose-spec repository
(check_jsonschema/builtin_schemas/vendor/compose-spec.json).
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import subprocess

import jsonschema
import pytest

from tests.integration.deploy.deploy_files import COMPOSE_FILE, DEPLOY, REPOSITORY, load_yaml

# Long-running services and the port each publishes first.
CONTRACT_PORTS = {
    "ingestion": 8081,
    "tracker": 8084,
    "prometheus": 9090,
    "alertmanager": 9093,
    "grafana": 3000,
    "loki": 3100,
    "jaeger": 16686,
    "node-exporter": 9100,
    "cadvisor": 8080,
    "locust-master": 8089,
}
ONE_SHOT_SERVICES = {"jaeger-volume-owner"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    text = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    schema = json.loads(text)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def long_running(compose: dict) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items() if name not in ONE_SHOT_SERVICES}


def test_compose_file_matches_the_specification(compose, validator):
    errors = [f"{'/'.join(map(str, error.path))}: {error.message}" for error in validator.iter_errors(compose)]
    assert errors == []


def test_schema_rejects_an_unknown_service_key(compose, validator):
    broken = copy.deepcopy(compose)
    broken["services"]["prometheus"]["retention"] = "30d"
    assert not validator.is_valid(broken)


def test_images_are_pinned(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        if "build" in service:
            assert image == "unmogrowp:local", name
            continue
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"


def test_services_have_health_restart_and_memory(compose):
    for name, service in long_running(compose).items():
        assert service["restart"] == "unless-stopped", name
        assert service["deploy"]["resources"]["limits"]["memory"], name
        if name == "locust-worker":
            # Workers serve no port; the master reports them as missing.
            assert service["healthcheck"] == {"disable": True}
            continue
        assert service["healthcheck"]["test"][0] == "CMD", name


def test_ports_are_the_contract_ports_on_loopback(compose):
    for name, port in CONTRACT_PORTS.items():
        published = compose["services"][name]["ports"][0]
        assert published == f"${{UNMOGROWP_BIND_ADDRESS:-127.0.0.1}}:{port}:{port}", name
    jaeger = compose["services"]["jaeger"]["ports"]
    assert [entry.rsplit(":", 1)[1] for entry in jaeger] == ["16686", "4317", "4318"]
    assert compose["services"]["locust-master"]["ports"][1].endswith(":9646:9646")


def test_named_volumes_hold_the_data(compose):
    declared = set(compose["volumes"])
    for name, mount in (("prometheus", "/prometheus"), ("alertmanager", "/alertmanager"),
                        ("grafana", "/var/lib/grafana"), ("loki", "/loki"), ("jaeger", "/badger"),
                        ("ingestion", "/data"), ("tracker", "/data")):
        volumes = compose["services"][name]["volumes"]
        named = [entry.split(":")[0] for entry in volumes if entry.split(":")[1] == mount]
        assert named and named[0] in declared, f"{name} keeps {mount} in a named volume"


def test_prometheus_keeps_30_days_and_exemplars(compose):
    command = compose["services"]["prometheus"]["command"]
    assert "--storage.tsdb.retention.time=30d" in command
    assert "--enable-feature=exemplar-storage" in command


def test_platform_services_commands(compose):
    services = compose["services"]
    assert services["ingestion"]["command"][:4] == ["unmogrowp", "ingestion", "--host", "0.0.0.0"]
    tracker = services["tracker"]["command"]
    assert tracker[:4] == ["unmogrowp", "tracker", "--host", "0.0.0.0"]
    assert tracker[tracker.index("--ingestion-url") + 1] == "http://ingestion:8081"
    assert services["locust-master"]["command"] == ["locust", "-f", "loadtest/", "--master"]
    assert services["locust-worker"]["command"][:4] == ["locust", "-f", "loadtest/", "--worker"]
    assert services["locust-master"]["profiles"] == ["loadtest"]
    assert services["locust-worker"]["profiles"] == ["loadtest"]
    for name in ("ingestion", "tracker", "locust-master", "locust-worker"):
        assert services[name]["build"] == {"context": "..", "dockerfile": "Dockerfile"}, name
        assert services[name]["environment"]["UNMOGROWP_ADMIN_TOKEN_FILE"] == "/run/secrets/admin_token", name
        assert "admin_token" in services[name]["secrets"], name


def test_secrets_come_from_ignored_files(compose):
    for name, secret in compose["secrets"].items():
        assert secret == {"file": f"./secrets/{name}"}
        result = subprocess.run(["git", "check-ignore", "-q", str(DEPLOY / "secrets" / name)], cwd=REPOSITORY,
                                check=False)
        assert result.returncode == 0, f"deploy/secrets/{name} must be ignored by git"
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana
    assert "admin123" not in COMPOSE_FILE.read_text(encoding="utf-8")


def test_alloy_ships_logs_and_promtail_is_gone(compose):
    assert "promtail" not in compose["services"]
    alloy = compose["services"]["alloy"]
    assert alloy["image"].startswith("grafana/alloy:")
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in alloy["volumes"]


def test_dockerfile_runs_the_project():
    dockerfile = (REPOSITORY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11[.\d]*-slim", dockerfile, re.MULTILINE)
    assert "RUN pip install ." in dockerfile
    assert "USER unmogrowp" in dockerfile
    ignored = (REPOSITORY / ".dockerignore").read_text(encoding="utf-8").split()
    for path in (".venv", ".git", "deploy/secrets", "var"):
        assert path in ignored, path


def test_entrypoint_exports_the_admin_token(tmp_path):
    token_file = tmp_path / "admin_token"
    token_file.write_text("0123456789abcdef", encoding="utf-8")
    result = subprocess.run(
        ["sh", str(DEPLOY / "docker-entrypoint.sh"), "sh", "-c", 'printf "%s|%s" "$UNMOGROWP_ADMIN_TOKEN" '
                                                                    '"${UNMOGROWP_ADMIN_TOKEN_FILE:-unset}"'],
        env={"PATH": "/usr/bin:/bin", "UNMOGROWP_ADMIN_TOKEN_FILE": str(token_file)},
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0123456789abcdef|unset"


@pytest.mark.parametrize("content", [None, ""], ids=["missing", "empty"])
def test_entrypoint_rejects_missing_token(tmp_path, content):
    token_file = tmp_path / "admin_token"
    if content is not None:
        token_file.write_text(content, encoding="utf-8")
    result = subprocess.run(
        ["sh", str(DEPLOY / "docker-entrypoint.sh"), "true"],
        env={"PATH": "/usr/bin:/bin", "UNMOGROWP_ADMIN_TOKEN_FILE": str(token_file)},
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1
    assert str(token_file) in result.stderr
