"""The gateway's MQTT TLS settings: a plain-text broker off this host is a config error unless allowed,
and the TLS files are checked once when the ingress is built."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from drivers.transports.mqtt import BrokerSettings, MqttIngress
from gateway.config import ConfigError, parse_config
from gateway.model import SystemClock
from gateway.runtime.cli import main

SITE = """\
gateway_id: gw-test
mqtt:
  host: {host}
  port: 8883
{extra}estates:
  - id: sunshine
    name: {{zh: 阳光花园, en: Sunshine Garden}}
"""


def site(host: str, **extra: object) -> str:
    lines = "".join(
        f"  {key}: {str(value).lower() if isinstance(value, bool) else value}\n"
        for key, value in extra.items()
    )
    return SITE.format(host=host, extra=lines)


@pytest.mark.parametrize("host", ["10.0.0.5", "mqtt.example.net", "0.0.0.0"])
def test_a_plain_text_broker_off_this_host_is_refused(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(site(host), "site.yaml", {})
    message = str(caught.value)
    assert message.startswith("site.yaml:2 mqtt: broker"), message  # the line of the `mqtt:` key
    assert "tls: true" in message and "allow_plaintext: true" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_a_plain_text_broker_on_this_host_is_fine(host: str) -> None:
    assert not parse_config(site(f'"{host}"'), "site.yaml", {}).mqtt.tls


def test_plain_text_off_this_host_when_the_site_says_so() -> None:
    config = parse_config(site("10.0.0.5", allow_plaintext=True), "site.yaml", {})
    assert config.mqtt.allow_plaintext and not config.mqtt.tls


def test_tls_to_a_remote_broker() -> None:
    config = parse_config(
        site("mqtt.example.net", tls=True, ca_file="/etc/estate-gateway/ca.crt"), "s.yaml", {}
    )
    assert config.mqtt.tls and config.mqtt.ca_file == "/etc/estate-gateway/ca.crt"
    assert not config.mqtt.tls_insecure


def test_a_key_needs_its_certificate() -> None:
    with pytest.raises(ConfigError, match="'key_file' needs 'cert_file'"):
        parse_config(site("mqtt.example.net", tls=True, key_file="k.pem"), "site.yaml", {})


def test_ssl_context() -> None:
    assert BrokerSettings("127.0.0.1", 1883, "gw").ssl_context() is None
    context = BrokerSettings("mqtt.example.net", 8883, "gw", tls=True).ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    insecure = BrokerSettings("mqtt.example.net", 8883, "gw", tls=True, tls_insecure=True).ssl_context()
    assert insecure is not None and insecure.verify_mode == ssl.CERT_REQUIRED and not insecure.check_hostname


def test_a_missing_ca_file_fails_when_the_ingress_is_built(tmp_path: Path) -> None:
    settings = BrokerSettings("127.0.0.1", 8883, "gw", tls=True, ca_file=str(tmp_path / "missing.crt"))
    with pytest.raises(FileNotFoundError):
        MqttIngress(settings, [], SystemClock())


def test_check_config_refuses_plain_text_to_a_remote_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(site("mqtt.example.net"))
    assert main(["check-config", str(path)]) == 2
    assert "site.yaml:2 mqtt: broker 'mqtt.example.net' is not on this host" in capsys.readouterr().err
    path.write_text(site("mqtt.example.net", tls=True))
    assert main(["check-config", str(path)]) == 0
