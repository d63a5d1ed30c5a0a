"""The broker configs in deploy/mosquitto, run for real: certificates from the operators' script, the
config's paths rewritten into a temp dir and its listener onto a free port of 127.0.0.1.

Only paths, ports and the privilege drop are rewritten; every security setting (TLS, anonymous access,
password file, ACL, bridge credentials and CA) is the shipped file's own.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
from pathlib import Path

from gateway.runtime.broker import BrokerError, find_mosquitto
from gateway.runtime.process import ServerProcess, port_open

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "mosquitto"
CERT_SCRIPT = DEPLOY / "make-test-certs.sh"

# Users of the central broker in these tests: the names the shipped acl gives rights to.
PASSWORDS = {"estate-gateway": "gw-secret-1", "sunshine-edge": "edge-secret-1", "maple-edge": "edge-secret-2"}


def make_certs(folder: Path, *clients: str) -> Path:
    """Run the operators' script: ca.crt, server.crt/key for 127.0.0.1 and localhost, client certs."""
    args = [arg for client in clients for arg in ("--client", client)]
    subprocess.run(
        ["bash", str(CERT_SCRIPT), str(folder), *args], check=True, capture_output=True, timeout=60
    )
    return folder


def write_passwords(path: Path, passwords: dict[str, str]) -> Path:
    """A Mosquitto password file (hashed by mosquitto_passwd)."""
    path.unlink(missing_ok=True)
    for user, password in passwords.items():
        flags = ["-b"] if path.exists() else ["-c", "-b"]
        subprocess.run(
            ["mosquitto_passwd", *flags, str(path), user, password],
            check=True,
            capture_output=True,
            timeout=10,
        )
    path.chmod(0o600)
    return path


def _run_as_self(text: str) -> str:
    # Run as root, Mosquitto drops to user `mosquitto`, which cannot read the temp dir's keys.
    return text + f"\nuser {getpass.getuser()}\n" if os.geteuid() == 0 else text


class DeployedMosquitto(ServerProcess):
    """A Mosquitto running `config` (text already rewritten for this machine), ready when `port` opens."""

    slug = name = "mosquitto"
    error = BrokerError
    stop_timeout = 5.0
    log_limit = None

    def __init__(self, config: str, port: int, folder: Path) -> None:
        super().__init__(folder)
        self.config, self.port = _run_as_self(config), port

    def command(self) -> list[str]:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError("mosquitto is not installed: run scripts/setup.sh (apt-get install mosquitto)")
        conf = self.folder / "mosquitto.conf"
        conf.write_text(self.config)
        return [binary, "-c", str(conf)]

    def ready(self) -> bool:
        return port_open(self.port)


def central_config(folder: Path, certs: Path, port: int) -> str:
    """deploy/mosquitto/mosquitto.conf with its files in `folder` and its TLS listener on `port`."""
    text = (DEPLOY / "mosquitto.conf").read_text()
    (folder / "data").mkdir(exist_ok=True)
    (folder / "acl").write_text((DEPLOY / "acl").read_text())
    secrets = folder / "secrets"  # what the compose volume broker-secrets holds
    secrets.mkdir(exist_ok=True)
    for name in ("ca.crt", "server.crt", "server.key"):
        shutil.copy(certs / name, secrets / name)
    write_passwords(secrets / "passwd", PASSWORDS)
    text = text.replace("/mosquitto/config/", f"{folder}/").replace("/mosquitto/secrets/", f"{secrets}/")
    text = text.replace("/mosquitto/data/", f"{folder}/data/")
    text, n = re.subn(r"^listener 8883$", f"listener {port} 127.0.0.1", text, flags=re.M)
    assert n == 1, "the central config has one TLS listener on 8883"
    return text


def edge_config(folder: Path, certs: Path, port: int, central_port: int) -> str:
    """deploy/mosquitto/edge-bridge.conf: local listener on `port`, bridged to 127.0.0.1:`central_port`."""
    text = (DEPLOY / "edge-bridge.conf").read_text()
    (folder / "data").mkdir(exist_ok=True)
    replacements = [
        (r"^listener 1883 127\.0\.0\.1$", f"listener {port} 127.0.0.1"),
        (r"^address mqtt\.example\.net:8883$", f"address 127.0.0.1:{central_port}"),
        (r"^remote_password change-me$", f"remote_password {PASSWORDS['sunshine-edge']}"),
        (r"^bridge_cafile /etc/mosquitto/certs/ca\.crt$", f"bridge_cafile {certs}/ca.crt"),
        (r"^persistence_location /var/lib/mosquitto/$", f"persistence_location {folder}/data/"),
    ]
    for pattern, value in replacements:
        text, n = re.subn(pattern, value, text, flags=re.M)
        assert n == 1, f"edge-bridge.conf has no line {pattern}"
    return text
