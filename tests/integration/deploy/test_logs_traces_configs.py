"""Loki, Alloy and Jaeger configurations, checked for consistency with the Compose stack.

NOTE: Loki, Alloy and Jaeger have no Debian package and no Docker engine runs
here, so their own config validation (loki -verify-config, alloy fmt,
jaeger validate) has not run on these files. These tests check structure and
the ports and names the other components rely on.
"""

from __future__ import annotations

import re

from tests.integration.deploy.deploy_files import COMPOSE_FILE, DEPLOY, PROMETHEUS_CONFIG, load_yaml

LOKI = DEPLOY / "loki" / "loki-config.yml"
ALLOY = DEPLOY / "alloy" / "config.alloy"
JAEGER = DEPLOY / "jaeger" / "config.yml"


def test_loki_keeps_30_days_and_structured_metadata():
    config = load_yaml(LOKI)
    assert config["server"]["http_listen_port"] == 3100
    assert config["limits_config"]["retention_period"] == "720h"
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert config["compactor"]["retention_enabled"] is True
    schema = config["schema_config"]["configs"][0]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")
    assert config["common"]["path_prefix"] == "/loki"


def test_compose_mounts_the_loki_config():
    loki = load_yaml(COMPOSE_FILE)["services"]["loki"]
    assert loki["command"] == ["-config.file=/etc/loki/loki-config.yml"]
    assert "./loki:/etc/loki:ro" in loki["volumes"]


def test_alloy_reads_this_project_and_writes_to_loki():
    text = ALLOY.read_text(encoding="utf-8")
    assert text.count("{") == text.count("}")
    project = load_yaml(COMPOSE_FILE)["name"]
    assert f'"com.docker.compose.project={project}"' in text
    assert 'url = "http://loki:3100/loki/api/v1/push"' in text
    assert text.count('host             = "unix:///var/run/docker.sock"') + text.count(
        'host          = "unix:///var/run/docker.sock"') == 2
    # trace_id becomes structured metadata, never a label: one stream per request would overload Loki.
    labels_block = re.search(r"stage\.labels \{(.*?)\n  \}", text, re.DOTALL).group(1)
    assert "trace_id" not in labels_block
    metadata_block = re.search(r"stage\.structured_metadata \{(.*?)\n  \}", text, re.DOTALL).group(1)
    assert "trace_id" in metadata_block


def test_alloy_components_are_wired():
    text = ALLOY.read_text(encoding="utf-8")
    defined = set(re.findall(r'^([a-z_.]+) "([a-z_]+)" \{', text, re.MULTILINE))
    referenced = set(re.findall(r"\b((?:discovery|loki)\.[a-z_.]+?)\.([a-z_]+)\.(?:targets|rules|receiver)\b", text))
    assert len(referenced) == 4
    assert referenced <= defined, referenced - defined


def test_jaeger_ports_match_compose_and_prometheus():
    config = load_yaml(JAEGER)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert config["extensions"]["jaeger_query"]["http"]["endpoint"] == "0.0.0.0:16686"
    reader = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    jobs = {scrape["job_name"]: scrape["static_configs"][0]["targets"][0]
            for scrape in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    assert jobs["jaeger"] == f"jaeger:{reader['port']}"
    health = config["extensions"]["healthcheckv2"]["http"]
    compose_check = load_yaml(COMPOSE_FILE)["services"]["jaeger"]["healthcheck"]["test"]
    assert compose_check[-1] == f"http://127.0.0.1:{health['endpoint'].rsplit(':', 1)[1]}{health['status']['path']}"


def test_jaeger_pipeline_uses_defined_components():
    config = load_yaml(JAEGER)
    service = config["service"]
    for extension in service["extensions"]:
        assert extension in config["extensions"], extension
    pipeline = service["pipelines"]["traces"]
    for kind, section in (("receivers", "receivers"), ("processors", "processors"), ("exporters", "exporters")):
        for name in pipeline[kind]:
            assert name in config[section], name
    store = config["extensions"]["jaeger_query"]["storage"]["traces"]
    assert store in config["extensions"]["jaeger_storage"]["backends"]
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] == store
    badger = config["extensions"]["jaeger_storage"]["backends"][store]["badger"]
    assert badger["ttl"]["spans"] == "720h"
    assert badger["directories"]["keys"].startswith("/badger/")
