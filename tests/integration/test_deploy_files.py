"""The deploy files are checked as far as this machine can: the systemd unit by systemd-analyze, the
compose file against the Compose Specification schema and against the repository (every bind mount
exists, every secret is in env.example), the Dockerfile by a small lint, and the example site file by
the gateway's own config loader."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from ruamel.yaml import YAML

from gateway.config import parse_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "estate-gateway.service"
EXEC = "/opt/estate-gateway/.venv/bin/estate-gateway"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEMD_ANALYZE, *args], check=False, capture_output=True, text=True, timeout=60)


def _unit_copy(tmp_path: Path, executable: bool) -> Path:
    """The unit in a temp dir; with `executable`, ExecStart points at a stub that exists."""
    text = UNIT.read_text()
    if executable:
        stub = tmp_path / "bin" / "estate-gateway"
        stub.parent.mkdir()
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        text = text.replace(EXEC, str(stub))
    unit = tmp_path / "unit" / UNIT.name
    unit.parent.mkdir()
    unit.write_text(text)
    return unit


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    result = _analyze("verify", str(_unit_copy(tmp_path, executable=True)))
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_systemd_unit_as_shipped_lacks_only_the_installed_binary(tmp_path: Path) -> None:
    result = _analyze("verify", str(_unit_copy(tmp_path, executable=False)))
    lines = {line for line in (result.stdout + result.stderr).splitlines() if line.strip()}
    assert lines == {f"{UNIT.name}: Command {EXEC} is not executable: No such file or directory"}


def test_systemd_unit_is_hardened(tmp_path: Path) -> None:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    expected = {
        "User": ["estate-gateway"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "NoNewPrivileges": ["yes"],
        "ReadWritePaths": ["/var/lib/estate-gateway"],
        "StateDirectory": ["estate-gateway"],
        "CapabilityBoundingSet": [""],
        "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
        "Restart": ["on-failure"],
        "EnvironmentFile": ["-/etc/estate-gateway/env"],
        "ExecStart": [f"{EXEC} run /etc/estate-gateway/site.yaml"],
    }
    for key, value in expected.items():
        assert settings.get(key) == value, key
    assert "@system-service" in settings["SystemCallFilter"]
    assert "RestartSec" in settings
    assert "WatchdogSec" not in settings, "the gateway does not implement sd_notify"
    # systemd's own score: 0 (locked down) .. 10 (exposed).
    result = _analyze("security", "--offline=yes", str(_unit_copy(tmp_path, executable=True)))
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0, result.stdout[-3000:]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
    errors = sorted(Draft7Validator(schema).iter_errors(_compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_compose_services_mount_what_the_repository_has() -> None:
    compose = _compose()
    named = set(compose.get("volumes") or {})
    assert set(compose["services"]) == {"mosquitto", "influxdb", "grafana", "postgres", "gateway"}
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: {source} is not in the repository"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
            assert target.startswith("/"), f"{name}: {volume}"
        for env_file in service.get("env_file", []):
            assert env_file == ".env" and (DEPLOY / "env.example").exists()
        if "build" in service:
            context = DEPLOY / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file()


def test_grafana_mounts_the_dashboards_where_provisioning_expects_them() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["../dashboards/provisioning"] == grafana["environment"]["GF_PATHS_PROVISIONING"]
    for provider_file in (REPO / "dashboards" / "provisioning" / "dashboards").glob("*.yaml"):
        provisioning = YAML(typ="safe").load(provider_file.read_text())
        for provider in provisioning["providers"]:
            assert mounts["../dashboards/json"] == provider["options"]["path"]
    datasource = (REPO / "dashboards" / "provisioning" / "datasources" / "influxdb.yaml").read_text()
    datasource = "\n".join(line for line in datasource.splitlines() if not line.lstrip().startswith("#"))
    for variable in set(_ENV_REF.findall(datasource)):
        assert variable in grafana["environment"], variable


def test_every_secret_the_stack_reads_is_in_env_example() -> None:
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    used = set(_ENV_REF.findall((DEPLOY / "docker-compose.yml").read_text()))
    used |= set(_ENV_REF.findall((DEPLOY / "examples" / "site-central.yaml").read_text()))
    assert used <= example, used - example


def test_the_central_site_file_is_valid_and_uses_tls_and_postgres() -> None:
    environ = {name: "0123456789abcdef0123456789abcdef" for name in _ENV_REF.findall(
        (DEPLOY / "examples" / "site-central.yaml").read_text()
    )}  # fmt: skip
    environ["PG_DSN"] = "postgresql://estate:pw@postgres:5432/estate"
    config = parse_config(
        (DEPLOY / "examples" / "site-central.yaml").read_text(), "site-central.yaml", environ
    )
    assert config.mqtt.tls and config.mqtt.port == 8883 and not config.mqtt.allow_plaintext
    assert config.mqtt.host in _compose()["services"]
    assert config.store.engine == "postgres" and config.influx.enabled
    gateway = _compose()["services"]["gateway"]
    assert any(v.endswith(":/etc/estate-gateway/tls:ro") for v in gateway["volumes"])
    assert config.mqtt.ca_file is not None and config.mqtt.ca_file.startswith("/etc/estate-gateway/tls/")


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_lint() -> None:
    instructions = _dockerfile()
    known = {"FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "VOLUME", "EXPOSE", "HEALTHCHECK", "STOPSIGNAL",
             "ENTRYPOINT", "CMD", "ARG", "LABEL"}  # fmt: skip
    assert {kind for kind, _ in instructions} <= known
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for kind, args in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"
    healthchecks = [args for kind, args in instructions if kind == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "HEALTH_URL" in healthchecks[0]
    assert any(
        kind == "ENV" and "HEALTH_URL=http://127.0.0.1:8080/health" in args for kind, args in instructions
    )
    for kind, args in instructions:
        if kind == "COPY":
            *sources, _ = args.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the build context"
    cmd = next(args for kind, args in instructions if kind == "CMD")
    assert json.loads(cmd) == ["run", "/etc/estate-gateway/site.yaml"]


def test_cert_script_is_valid_bash() -> None:
    script = DEPLOY / "mosquitto" / "make-test-certs.sh"
    assert (
        subprocess.run(["bash", "-n", str(script)], check=False, capture_output=True, timeout=10).returncode
        == 0
    )
