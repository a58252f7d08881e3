"""The hub's TOML configuration: loads when right, one clear error when not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import FacilityKind, HubSettings
from ruuhka.settings import ConfigError, load_settings

EXAMPLE = """\
[mqtt]
url = "mqtt://127.0.0.1:1883"
[store]
url = "sqlite:///var/lib/ruuhka/ruuhka.db"
[http]
host = "127.0.0.1"
port = 8000
[[facilities]]
id = "uimahalli"
kind = "swimming_hall"
capacity = 300
name = { fi = "Uimahalli", sv = "Simhallen", en = "Swimming hall" }
[[facilities.sources]]
device = "uimahalli-gate"
counter = "main"
"""

SECOND_FACILITY = """\
[[facilities]]
id = "{id}"
kind = "gym"
name = {{ fi = "Kuntosali" }}
[[facilities.sources]]
device = "{device}"
counter = "{counter}"
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """RUUHKA_* variables of the machine running the tests must not leak in."""
    for name in list(os.environ):
        if name.upper().startswith("RUUHKA_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "hub.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(HubSettings, path)
    message = str(excinfo.value)
    assert "Traceback" not in message
    assert 'File "' not in message
    return message


def test_readme_example_loads(tmp_path: Path) -> None:
    settings = load_settings(HubSettings, write(tmp_path, EXAMPLE))
    assert settings.mqtt.url == "mqtt://127.0.0.1:1883"
    assert settings.mqtt.host == "127.0.0.1"
    assert settings.mqtt.port == 1883
    assert settings.mqtt.tls is False
    assert settings.store.url == "sqlite:///var/lib/ruuhka/ruuhka.db"
    assert settings.http.host == "127.0.0.1"
    assert settings.http.port == 8000
    assert len(settings.facilities) == 1
    pool = settings.facilities[0]
    assert pool.id == "uimahalli"
    assert pool.kind is FacilityKind.SWIMMING_HALL
    assert pool.capacity == 300
    assert pool.name == {"fi": "Uimahalli", "sv": "Simhallen", "en": "Swimming hall"}
    assert pool.display_name("sv") == "Simhallen"
    assert pool.timezone == "Europe/Helsinki"
    assert [(s.device, s.counter) for s in pool.sources] == [("uimahalli-gate", "main")]
    assert settings.facility("uimahalli") is pool
    assert settings.facility("nope") is None


def test_two_facilities_with_distinct_sources_load(tmp_path: Path) -> None:
    text = EXAMPLE + SECOND_FACILITY.format(id="kuntosali", device="gym-gate", counter="main")
    settings = load_settings(HubSettings, write(tmp_path, text))
    assert [f.id for f in settings.facilities] == ["uimahalli", "kuntosali"]


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace("port = 8000", "port = = 8000"), "broken.toml")
    message = config_error(path)
    assert "broken.toml" in message
    assert "TOML" in message
    assert "line 7" in message


def test_negative_capacity(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, EXAMPLE.replace("capacity = 300", "capacity = -5")))
    assert "hub.toml" in message
    assert "facilities[0].capacity" in message
    assert "greater than 0" in message


def test_unknown_kind(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, EXAMPLE.replace('"swimming_hall"', '"sauna"')))
    assert "facilities[0].kind" in message
    assert "swimming_hall" in message  # says what is allowed


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, EXAMPLE.replace("[mqtt]", "[mqt]")))
    assert "mqt:" in message
    assert "not permitted" in message


def test_unknown_nested_key(tmp_path: Path) -> None:
    text = EXAMPLE.replace('counter = "main"', 'counter = "main"\ncountr = "x"')
    message = config_error(write(tmp_path, text))
    assert "facilities[0].sources[0].countr" in message
    assert "not permitted" in message


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:1883", "127.0.0.1:1883", "mqtt://", "mqtt://127.0.0.1:99999"],
)
def test_bad_mqtt_url(tmp_path: Path, url: str) -> None:
    message = config_error(write(tmp_path, EXAMPLE.replace("mqtt://127.0.0.1:1883", url)))
    assert "mqtt.url" in message
    assert "mqtt://host" in message or "port" in message


def test_duplicate_facility_id(tmp_path: Path) -> None:
    text = EXAMPLE + SECOND_FACILITY.format(id="uimahalli", device="gym-gate", counter="main")
    message = config_error(write(tmp_path, text))
    assert "'uimahalli'" in message
    assert "appears twice" in message


def test_same_device_and_counter_on_two_facilities(tmp_path: Path) -> None:
    text = EXAMPLE + SECOND_FACILITY.format(id="kuntosali", device="uimahalli-gate", counter="main")
    message = config_error(write(tmp_path, text))
    assert "'uimahalli-gate'" in message
    assert "main" in message
    assert "'uimahalli'" in message and "'kuntosali'" in message


@pytest.mark.parametrize(
    ("facility_id", "device"), [("uimahalli", "gym-gate"), ("kuntosali", "uimahalli-gate")]
)
def test_duplicate_errors_name_the_key_path(tmp_path: Path, facility_id: str, device: str) -> None:
    text = EXAMPLE + SECOND_FACILITY.format(id=facility_id, device=device, counter="main")
    message = config_error(write(tmp_path, text))
    assert "facilities[1]" in message


def test_same_device_different_counters_on_two_facilities(tmp_path: Path) -> None:
    text = EXAMPLE + SECOND_FACILITY.format(id="kuntosali", device="uimahalli-gate", counter="side")
    settings = load_settings(HubSettings, write(tmp_path, text))
    assert [f.id for f in settings.facilities] == ["uimahalli", "kuntosali"]


def test_unknown_language_in_name(tmp_path: Path) -> None:
    text = EXAMPLE.replace('en = "Swimming hall"', 'de = "Hallenbad"')
    message = config_error(write(tmp_path, text))
    assert "facilities[0].name" in message
    assert "unknown language" in message
    assert "de" in message


@pytest.mark.parametrize("hours", ["25:00-26:00", "6-21", "21:00-06:00"])
def test_bad_opening_hours(tmp_path: Path, hours: str) -> None:
    text = EXAMPLE.replace(
        "[[facilities.sources]]", f'opening_hours = {{ mon = "{hours}" }}\n[[facilities.sources]]'
    )
    message = config_error(write(tmp_path, text))
    assert "facilities[0].opening_hours" in message
    assert hours in message


def test_good_opening_hours_load(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        "[[facilities.sources]]",
        'opening_hours = { mon = "06:00-21:00", sun = "closed", sat = "08:00-24:00" }\n'
        "[[facilities.sources]]",
    )
    settings = load_settings(HubSettings, write(tmp_path, text))
    assert settings.facilities[0].opening_hours["sun"] == "closed"


def test_missing_file(tmp_path: Path) -> None:
    message = config_error(tmp_path / "nowhere.toml")
    assert "nowhere.toml" in message
    assert "no such config file" in message


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = EXAMPLE.replace(
        'url = "mqtt://127.0.0.1:1883"', 'url = "mqtt://127.0.0.1:1883"\nusername = "hub"'
    )
    monkeypatch.setenv("RUUHKA_MQTT__URL", "mqtt://example:1884")
    settings = load_settings(HubSettings, write(tmp_path, text))
    assert settings.mqtt.url == "mqtt://example:1884"
    assert settings.mqtt.host == "example"
    assert settings.mqtt.port == 1884
    # Only the one key is overridden; the rest of [mqtt] still comes from the file.
    assert settings.mqtt.username == "hub"
    assert settings.facilities[0].id == "uimahalli"


def test_environment_secret_without_file_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUUHKA_MQTT__PASSWORD", "s3cret")
    settings = load_settings(HubSettings, write(tmp_path, EXAMPLE))
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "s3cret"
    assert settings.mqtt.url == "mqtt://127.0.0.1:1883"


def test_bad_environment_value_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUUHKA_MQTT__URL", "ftp://example")
    message = config_error(write(tmp_path, EXAMPLE))
    assert "mqtt.url" in message


def test_hub_command_with_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path, EXAMPLE.replace("capacity = 300", "capacity = -5"), "bad.toml")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RUUHKA_")}
    result = subprocess.run(
        [sys.executable, "-m", "ruuhka", "hub", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "facilities[0].capacity" in result.stderr
    assert "bad.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_hub_command_with_missing_config_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RUUHKA_")}
    result = subprocess.run(
        [sys.executable, "-m", "ruuhka", "hub", "--config", str(tmp_path / "absent.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "absent.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_tile_server_loads_with_its_attribution(tmp_path: Path) -> None:
    site = '[site]\ntile_url = "https://tiles.example.fi/wmts/{z}/{x}/{y}.png"\n'
    settings = load_settings(
        HubSettings, write(tmp_path, site + 'tile_attribution = "© Example city"\n' + EXAMPLE)
    )
    assert settings.site.tile_origin == "https://tiles.example.fi"
    assert load_settings(HubSettings, write(tmp_path, EXAMPLE)).site.tile_origin is None


@pytest.mark.parametrize(
    ("site", "said"),
    [
        ('tile_url = "https://t.example/{z}/{x}/{y}.png"', "needs tile_attribution"),
        ('tile_attribution = "© Someone"', "tile_attribution without tile_url"),
        ('tile_url = "https://t.example/{z}/{x}.png"\ntile_attribution = "x"', "{z}, {x} and {y}"),
        ('tile_url = "https://{s}.t.example/{z}/{x}/{y}.png"\ntile_attribution = "x"', "tile_url"),
        ('tile_url = "javascript:alert(1)//{z}/{x}/{y}"\ntile_attribution = "x"', "tile_url"),
        ('tile_url = "https://user@t.example/{z}/{x}/{y}"\ntile_attribution = "x"', "tile_url"),
    ],
)
def test_a_tile_server_must_be_one_credited_origin(tmp_path: Path, site: str, said: str) -> None:
    message = config_error(write(tmp_path, f"[site]\n{site}\n" + EXAMPLE))
    assert "site" in message and said in message, message
