"""HTTP hardening and secret hygiene, on the real app (in-process and as a process)."""

from __future__ import annotations

import hashlib
import logging
import re
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Request
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hub.app import create_app
from hub.config import HubSettings
from hub.security import TokenBuckets, client_key
from ruuhka.broker import Broker, free_port
from ruuhka.secret_hygiene import mask_in_logs, protect, secret_keys, warn_if_exposed
from ruuhka.settings import ConfigError, MqttSettings, load_settings
from tests.conftest import HUB_CONFIG, HubProcess, http_get

ROOT = Path(__file__).resolve().parent.parent


def settings_for(tmp_path: Path, broker: Broker, **http: object) -> HubSettings:
    data = tomllib.loads(
        HUB_CONFIG.format(
            mqtt_url=broker.url, db=tmp_path / "hub.db", port=0, client_id="security-test"
        )
    )
    data["http"].update(http)
    return HubSettings(**data)


@pytest.fixture
def client(tmp_path: Path, broker: Broker) -> Iterator[TestClient]:
    app = create_app(settings_for(tmp_path, broker, api_rate_per_s=1000, max_body_bytes=1024))

    async def echo(request: Request) -> dict[str, int]:
        """A route that reads its body, as a crew form post does."""
        return {"bytes": len(await request.body())}

    app.add_api_route("/echo", echo, methods=["POST"], include_in_schema=False)
    with TestClient(app, base_url="http://hub.example") as test_client:
        yield test_client


def csp(response: object) -> dict[str, str]:
    header = response.headers["content-security-policy"]  # type: ignore[attr-defined]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


def test_security_headers_on_every_response(client: TestClient) -> None:
    for path, status in [("/", 200), ("/api/v1/facilities", 200), ("/nowhere", 404)]:
        response = client.get(path)
        assert response.status_code == status, path
        policy = csp(response)
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert policy["default-src"] == "'self'"
        assert policy["script-src"] == "'self'"
        assert policy["frame-ancestors"] == "'none'"
        assert policy["connect-src"] == "'self' ws://hub.example"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in response.headers


def test_hsts_only_over_tls(tmp_path: Path, broker: Broker) -> None:
    app = create_app(settings_for(tmp_path, broker))
    with TestClient(app, base_url="https://hub.example") as tls:
        response = tls.get("/")
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        assert csp(response)["connect-src"] == "'self' wss://hub.example"


@pytest.mark.parametrize("path", ["/", "/facilities/pool", "/about"])
def test_the_public_pages_need_no_inline_script_or_style(client: TestClient, path: str) -> None:
    """The CSP forbids them, so the pages must not have them."""
    response = client.get(path)
    assert response.status_code == 200
    html = response.text
    for attributes, content in re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S):
        assert "src=" in attributes and not content.strip()  # external files only
    assert "<style" not in html
    assert re.search(r"\sstyle\s*=", html) is None
    assert re.search(r"\son[a-z]+\s*=", html) is None  # no onclick= and friends


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_come_from_the_hub_under_the_same_policy(
    client: TestClient, path: str
) -> None:
    """No third party and no inline script: the policy every page has (the pages render
    under it: tests/test_web_browser.py)."""
    response = client.get(path)
    assert response.status_code == 200
    policy = csp(response)
    assert policy["script-src"] == "'self'"
    # ReDoc sets its styles inline; no inline script anywhere.
    assert policy["style-src"] == ("'self' 'unsafe-inline'" if path == "/redoc" else "'self'")
    assert "http" not in policy["img-src"] + policy["script-src"] + policy["font-src"]
    html = response.text
    assert re.search(r"<script>|<style|\sstyle=", html) is None
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 2
    for asset in assets:
        assert asset.startswith("/"), asset  # the hub's own files
        fetched = client.get(asset)
        assert fetched.status_code == 200, asset
        assert fetched.headers["x-content-type-options"] == "nosniff"
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")


def test_metrics_answer_only_the_configured_addresses(tmp_path: Path, broker: Broker) -> None:
    app = create_app(settings_for(tmp_path, broker, metrics_from=["192.0.2.0/24"]))
    with (
        TestClient(app, client=("192.0.2.9", 5000)) as allowed,
        TestClient(app, client=("198.51.100.9", 5000)) as other,
    ):
        assert allowed.get("/metrics").text.startswith("# HELP")
        assert other.get("/metrics").status_code == 404


def test_cors_lets_anyone_read_open_data_and_nothing_else(client: TestClient) -> None:
    origin = {"Origin": "https://elsewhere.example"}
    response = client.get("/api/v1/facilities", headers=origin)
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert "access-control-allow-origin" not in client.get("/", headers=origin).headers
    assert (
        "access-control-allow-origin" not in client.get("/api/v1/crew/me", headers=origin).headers
    )
    read = client.options(
        "/api/v1/facilities", headers={**origin, "Access-Control-Request-Method": "GET"}
    )
    assert read.status_code == 204
    assert read.headers["access-control-allow-methods"] == "GET, HEAD"
    for path, method in [("/api/v1/facilities", "POST"), ("/api/v1/crew/me", "GET")]:
        refused = client.options(path, headers={**origin, "Access-Control-Request-Method": method})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers


def test_request_bodies_are_limited(client: TestClient) -> None:
    assert client.post("/echo", content=b"x" * 1024).json() == {"bytes": 1024}
    declared = client.post("/echo", content=b"x" * 1025)
    assert declared.status_code == 413
    assert declared.headers["x-content-type-options"] == "nosniff"

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"y" * 200

    streamed = client.post("/echo", content=chunks())  # chunked: no Content-Length
    assert streamed.status_code == 413
    assert client.post("/api/v1/facilities", content=b"z" * 5000).status_code == 413


def test_the_public_api_is_rate_limited_per_client(tmp_path: Path, broker: Broker) -> None:
    app = create_app(settings_for(tmp_path, broker, api_rate_per_s=0.5, api_burst=3))
    with TestClient(app) as limited:
        statuses = [limited.get("/api/v1/facilities").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = limited.get("/api/v1/contract", headers={"Origin": "https://x.example"})
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "2"
        assert refused.headers["access-control-allow-origin"] == "*"
        assert limited.get("/").status_code == 200  # the page is not the API
        assert limited.get("/healthz").status_code == 200
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            limited.websocket_connect("/api/v1/live"),
        ):
            pass
        assert closed.value.code == 1008  # policy violation; uvicorn answers it with 403


def test_token_buckets() -> None:
    buckets = TokenBuckets(rate=2.0, burst=2, max_clients=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert buckets.take("b", now=0.0) == 0.0  # another client has its own bucket
    assert buckets.take("a", now=0.4) == pytest.approx(0.1)
    assert buckets.take("a", now=1.0) == 0.0
    for key in "cdefg":
        buckets.take(key, now=1.0)
    assert len(buckets) == 3  # memory stays bounded under many addresses


def test_client_keys_group_ipv6_by_64() -> None:
    def key(host: str) -> str:
        return client_key({"client": (host, 1234)})

    assert key("2001:db8:1:2:aaaa::1") == key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert key("2001:db8:1:3::1") != key("2001:db8:1:2::1")
    assert key("192.0.2.7") == "192.0.2.7" == key("::ffff:192.0.2.7")
    assert client_key({"client": None}) == "unknown"


def test_a_world_readable_config_with_secrets_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[mqtt]\nusername = "hub"\npassword = "s3cret-value"\n', encoding="utf-8")
    config.chmod(0o644)
    with caplog.at_level(logging.WARNING, "ruuhka.secrets"):
        assert warn_if_exposed(config) == ["mqtt.password"]
    assert "every user on this machine can read it" in caplog.text
    assert "s3cret-value" not in caplog.text
    caplog.clear()
    config.chmod(0o640)  # readable by a service group is how it should be
    assert warn_if_exposed(config) == []
    plain = tmp_path / "plain.toml"
    plain.write_text('[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n', encoding="utf-8")
    plain.chmod(0o644)
    assert warn_if_exposed(plain) == []
    assert caplog.text == ""
    assert secret_keys({"a": [{"api_key": "k"}], "token": "", "crew": {"secret": "x"}}) == [
        "a[0].api_key",
        "crew.secret",
    ]


def test_configured_secrets_never_reach_a_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "never-log-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    protect(None, MqttSettings(username="hub", password=secret))
    logger = logging.getLogger("ruuhka.test")
    with caplog.at_level(logging.INFO, "ruuhka.test"):
        logger.info("connecting with %s", secret)
        logger.warning(f"inline {secret} too")
        try:
            raise RuntimeError(f"refused: {secret}")
        except RuntimeError:
            logger.exception("failed")
        logger.info("unrelated %d", 5)
    formatted = "\n".join(caplog.handler.format(r) for r in caplog.records)
    assert secret not in formatted
    assert formatted.count("***") == 3
    assert "unrelated 5" in formatted
    mask_in_logs(["abc"])  # too short to mask without ruining every log line
    with caplog.at_level(logging.INFO, "ruuhka.test"):
        logger.info("abc")
    assert caplog.records[-1].getMessage() == "abc"


def test_credentials_in_the_broker_url_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[mqtt]\nurl = "mqtt://hub:pw-in-url@127.0.0.1:1883"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(HubSettings, config)
    assert "not in the URL" in str(refused.value)
    assert "pw-in-url" not in str(refused.value)


def test_the_running_hub_sends_the_headers(tmp_path: Path, broker: Broker) -> None:
    """Through uvicorn: a TLS-terminating proxy on loopback is trusted for the scheme."""
    port = free_port()
    config = tmp_path / "hub.toml"
    config.write_text(
        HUB_CONFIG.format(mqtt_url=broker.url, db=tmp_path / "hub.db", port=port, client_id="h"),
        encoding="utf-8",
    )
    hub = HubProcess(config, port, tmp_path / "hub.log").start()
    try:
        status, _ = http_get(hub.url + "/api/v1/facilities")
        assert status == 200
        plain = urllib.request.urlopen(hub.url + "/", timeout=5)
        assert "strict-transport-security" not in {k.lower() for k in plain.headers}
        assert "'unsafe-inline'" not in plain.headers["Content-Security-Policy"]
        proxied = urllib.request.urlopen(
            urllib.request.Request(hub.url + "/", headers={"X-Forwarded-Proto": "https"}),
            timeout=5,
        )
        assert proxied.headers["Strict-Transport-Security"] == "max-age=31536000"
        # /metrics: to this machine (the default), not to a client a proxy forwards.
        assert http_get(hub.url + "/metrics")[0] == 200
        assert http_get(hub.url + "/metrics", {"X-Forwarded-For": "203.0.113.7"})[0] == 404
    finally:
        hub.stop()
