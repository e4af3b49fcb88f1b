"""deploy/activate-monitoring.sh: syntax, failure messages, and the secrets it creates.

No Docker engine runs on the test machines, so the paths up to the Docker
checks run for real, and a stand-in `docker` script on PATH plays a Docker
CLI whose Compose plugin or daemon is missing.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.integration.deploy.deploy_files import DEPLOY

SCRIPT = DEPLOY / "activate-monitoring.sh"
SECRET_NAMES = ("admin_token", "grafana_admin_password", "slack_webhook_url", "smtp_password")


def tool_folder(tmp_path: Path, *tools: str) -> Path:
    """Return a folder of links to the given system tools, to use as the whole PATH."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        assert found, f"{tool} is not installed"
        (folder / tool).symlink_to(found)
    return folder


def fake_docker(folder: Path, *, compose_works: bool) -> None:
    """Write a `docker` script whose `info` fails, and whose `compose version` fails unless compose_works."""
    compose_status = 0 if compose_works else 1
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = compose ]; then [ {compose_status} = 0 ] && echo 2.29.0; exit {compose_status}; fi\n'
        'if [ "$1" = info ]; then echo "Cannot connect to the Docker daemon" >&2; exit 1; fi\n'
        "exit 0\n",
        encoding="utf-8",
    )
    script.chmod(0o755)


def run_script(path_folder: Path, *arguments: str, secrets_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": str(path_folder), "HOME": str(path_folder.parent)}
    if secrets_dir is not None:
        env["UNMOGROWP_SECRETS_DIR"] = str(secrets_dir)
    return subprocess.run([shutil.which("bash"), str(SCRIPT), *arguments], env=env, capture_output=True, text=True,
                          check=False, timeout=60)


BASE_TOOLS = ("dirname", "sed", "mkdir", "chmod", "mv", "od", "tr", "cat")


def test_bash_syntax():
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    scripts = [SCRIPT, DEPLOY / "docker-entrypoint.sh", *sorted((DEPLOY / "local").glob("*.sh"))]
    result = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_fails_clearly_without_docker(tmp_path):
    result = run_script(tool_folder(tmp_path, *BASE_TOOLS), secrets_dir=tmp_path / "secrets")

    assert result.returncode == 1
    assert "FAILED: docker is not installed" in result.stderr
    assert "https://docs.docker.com/engine/install/" in result.stderr
    assert "deploy/local/run-stack.sh" in result.stderr
    # Nothing is created before the prerequisites hold.
    assert not (tmp_path / "secrets").exists()


def test_fails_clearly_without_compose_plugin(tmp_path):
    folder = tool_folder(tmp_path, *BASE_TOOLS)
    fake_docker(folder, compose_works=False)

    result = run_script(folder, secrets_dir=tmp_path / "secrets")

    assert result.returncode == 1
    assert "FAILED: the Docker Compose plugin is missing" in result.stderr
    assert "docker-compose-plugin" in result.stderr


def test_fails_clearly_without_daemon(tmp_path):
    folder = tool_folder(tmp_path, *BASE_TOOLS)
    fake_docker(folder, compose_works=True)

    result = run_script(folder, secrets_dir=tmp_path / "secrets")

    assert result.returncode == 1
    assert "ok    docker compose 2.29.0" in result.stdout
    assert "FAILED: cannot reach the Docker daemon" in result.stderr
    assert "sudo systemctl start docker" in result.stderr


def test_rejects_unknown_option(tmp_path):
    result = run_script(tool_folder(tmp_path, *BASE_TOOLS), "--fast")
    assert result.returncode == 1
    assert "unknown option: --fast" in result.stderr


def test_secrets_are_random_private_and_kept(tmp_path):
    secrets_dir = tmp_path / "secrets"
    folder = tool_folder(tmp_path, *BASE_TOOLS)

    first = run_script(folder, "--secrets-only", secrets_dir=secrets_dir)
    assert first.returncode == 0, first.stderr
    values = {name: (secrets_dir / name).read_text() for name in SECRET_NAMES}

    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    for name in SECRET_NAMES:
        assert stat.S_IMODE((secrets_dir / name).stat().st_mode) == 0o644, name
    for name in ("admin_token", "grafana_admin_password"):
        assert len(values[name]) == 48, name
        assert int(values[name], 16) >= 0, name
    assert values["admin_token"] != values["grafana_admin_password"]
    assert values["slack_webhook_url"] == ""
    assert "Slack notifications fail until" in first.stderr

    second = run_script(folder, "--secrets-only", secrets_dir=secrets_dir)
    assert second.returncode == 0, second.stderr
    assert {name: (secrets_dir / name).read_text() for name in SECRET_NAMES} == values
    assert "secret admin_token kept" in second.stdout

    other = run_script(folder, "--secrets-only", secrets_dir=tmp_path / "other")
    assert (tmp_path / "other" / "admin_token").read_text() != values["admin_token"]


def test_no_default_password_anywhere():
    for path in (SCRIPT, DEPLOY / "docker-compose.yml", DEPLOY / "alertmanager" / "alertmanager.yml"):
        text = path.read_text(encoding="utf-8")
        assert "admin123" not in text, path
        assert "GF_SECURITY_ADMIN_PASSWORD:" not in text, path


def test_script_is_executable():
    assert os.access(SCRIPT, os.X_OK)
