"""deploy/compose/nginx.conf with the real nginx in front of a real hub: the hub sees
each client's own address (its per-address limits depend on it), and /metrics is
not served to the internet.

Debian's nginx is older than the compose file's image; the one directive it does
not know (``http2 on``, nginx 1.25.1) is left out here. The upstream names, the
ports and the certificate are this test's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ruuhka.broker import free_port
from tests.conftest import wait_for
from tests.crew_support import PASSWORD, CrewHub, crew_hub

NGINX_CONF = Path(__file__).resolve().parent.parent / "deploy" / "compose" / "nginx.conf"


def certificate(folder: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(folder / "server.key"),
         "-out", str(folder / "server.crt")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def nginx_version() -> tuple[int, ...]:
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=True)
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", done.stderr)
    assert found, done.stderr
    return tuple(int(n) for n in found.groups())


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CrewHub, str]]:
    if shutil.which("nginx") is None:
        pytest.fail("nginx is missing: apt-get install nginx (make system-deps)")
    folder = tmp_path_factory.mktemp("nginx")
    certificate(folder)
    with crew_hub(folder) as hub:
        https = free_port()
        text = NGINX_CONF.read_text(encoding="utf-8")
        text = text.replace("/etc/nginx/certs", str(folder))
        for name in ("hub-a", "hub-b"):
            text = text.replace(f"{name}:8000", f"127.0.0.1:{hub.port}")
        text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
        text = text.replace("listen 80;", f"listen 127.0.0.1:{free_port()};")
        text = re.sub(r"\n\s*listen \[::\]:\d+( ssl)?;", "", text)
        if nginx_version() < (1, 25, 1):
            text = text.replace("http2 on;", "")
        config = folder / "nginx.conf"
        config.write_text(text, encoding="utf-8")
        settings = f"user root; pid {folder / 'nginx.pid'}; error_log {folder / 'error.log'};"
        process = subprocess.Popen(
            ["nginx", "-p", str(folder), "-c", str(config), "-g",
             f"daemon off; {settings}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"https://127.0.0.1:{https}"
        try:
            wait_for(lambda: _answers(url), 20, "nginx to answer")
            yield hub, url
        finally:
            process.terminate()
            process.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", verify=False, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def client(url: str, source: str) -> httpx.Client:
    """A browser at ``source`` (a loopback address of its own)."""
    transport = httpx.HTTPTransport(local_address=source, verify=False)
    return httpx.Client(base_url=url, transport=transport, timeout=30)


def login(http: httpx.Client, name: str, password: str) -> httpx.Response:
    page = http.get("/crew/login?lang=en")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, page.text[-300:]
    return http.post(
        "/crew/login?lang=en", data={"csrf": token.group(1), "name": name, "password": password}
    )


def test_the_hub_counts_each_client_behind_the_proxy(proxied: tuple[CrewHub, str]) -> None:
    """One client's wrong passwords reach its address's limit (ip_max_failures = 6);
    another client behind the same proxy is not held to it."""
    _, url = proxied
    with client(url, "127.0.0.21") as guesser:
        statuses = [login(guesser, f"guess{n}", "password1").status_code for n in range(7)]
        assert statuses == [401] * 6 + [429], statuses
    with client(url, "127.0.0.22") as crew:
        assert login(crew, "city", PASSWORD).status_code == 303
        assert crew.get("/api/v1/crew/me").json()["crew"] == "city"


def test_metrics_are_not_served_through_the_proxy(proxied: tuple[CrewHub, str]) -> None:
    hub, url = proxied
    with client(url, "127.0.0.23") as outsider:
        assert outsider.get("/metrics").status_code == 404
        assert outsider.get("/api/v1/facilities").status_code == 200
    assert hub.metric("ruuhka_crew_logins_total", result="ok") >= 1  # directly: yes
