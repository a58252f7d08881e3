"""Ticketing / access-control numbers polled over HTTP (JSON or CSV).

Many halls already know how many people are inside: "the numbers come straight
from ticket sales and access control". This source polls such an endpoint and
maps its fields to either a headcount (``occupancy``) or cumulative
``entries``/``exits``. A timeout, an HTTP error or a missing field is a failed
reading: the agent retries with exponential backoff and jitter up to
``max_backoff_s`` and logs the failure once and the recovery once.

Sample configuration, JSON (a dotted path; numbers index lists)::

    [[sources]]
    type = "http_poll"
    counter = "tickets"
    url = "http://kassa.local/api/status"
    format = "json"
    occupancy = "facilities.0.visitors.inside"   # or: entries = "...", exits = "..."
    timeout_s = 5
    interval_s = 30
    headers = { Authorization = "Bearer …" }     # or RUUHKA_EDGE_SOURCES__0__HEADERS

CSV (a column name; the row is the last one unless ``csv_row`` says otherwise)::

    [[sources]]
    type = "http_poll"
    counter = "gate"
    url = "http://10.0.0.5/export/today.csv"
    format = "csv"
    entries = "Sisään"
    exits = "Ulos"
    csv_delimiter = ";"
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from edge.sources import Readings, SourceConfigBase, SourceError, as_count
from ruuhka import __version__
from ruuhka.contract import SourceName, Stream

MAX_BODY_BYTES = 1_000_000


class HttpPollConfig(SourceConfigBase):
    type: Literal["http_poll"] = "http_poll"
    counter: SourceName = "tickets"
    url: str
    format: Literal["json", "csv"] = "json"
    occupancy: str | None = Field(default=None, description="Field holding the headcount.")
    entries: str | None = Field(default=None, description="Field holding cumulative entries.")
    exits: str | None = Field(default=None, description="Field holding cumulative exits.")
    csv_row: int = Field(default=-1, description="Which data row of a CSV; -1 is the last.")
    csv_delimiter: str = Field(default=",", min_length=1, max_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    interval_s: float = Field(default=30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _mapping(self) -> HttpPollConfig:
        pair = (self.entries is not None, self.exits is not None)
        if self.occupancy is not None and any(pair):
            raise ValueError("map either occupancy, or entries and exits, not both")
        if self.occupancy is None and pair != (True, True):
            raise ValueError("map occupancy, or both entries and exits")
        return self


def json_path(document: Any, path: str) -> Any:
    """``a.b.0.c``: keys of objects, indices of lists."""
    here = document
    for part in path.split("."):
        if isinstance(here, dict) and part in here:
            here = here[part]
        elif isinstance(here, list) and part.lstrip("-").isdigit():
            try:
                here = here[int(part)]
            except IndexError:
                raise SourceError(f"{path}: no item {part}") from None
        else:
            raise SourceError(f"{path}: no {part!r} in the response")
    return here


class HttpPoll:
    def __init__(self, config: HttpPollConfig) -> None:
        self.config = config
        self.name = config.counter
        self.interval_s = config.interval_s
        self.max_backoff_s = config.max_backoff_s
        accept = "application/json" if config.format == "json" else "text/csv"
        self._headers = {
            "Accept": accept,
            "User-Agent": f"ruuhka-edge/{__version__}",
            **config.headers,
        }

    def fetch(self) -> str:
        request = urllib.request.Request(self.config.url, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                body = response.read(MAX_BODY_BYTES + 1)
                charset = response.headers.get_content_charset() or "utf-8"
        except urllib.error.HTTPError as exc:
            raise SourceError(f"{self.config.url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SourceError(f"{self.config.url}: {reason}") from None
        if len(body) > MAX_BODY_BYTES:
            raise SourceError(f"{self.config.url}: response larger than {MAX_BODY_BYTES} bytes")
        try:
            return body.decode("utf-8-sig" if charset.lower() in ("utf-8", "utf8") else charset)
        except (UnicodeDecodeError, LookupError) as exc:
            raise SourceError(f"{self.config.url}: cannot decode the response: {exc}") from None

    def _fields(self, text: str) -> dict[str, Any]:
        c = self.config
        mapping = (("occupancy", c.occupancy), ("entries", c.entries), ("exits", c.exits))
        wanted = {key: path for key, path in mapping if path is not None}
        if c.format == "json":
            try:
                document = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SourceError(f"{c.url}: not JSON: {exc}") from None
            return {key: json_path(document, path) for key, path in wanted.items()}
        rows = list(csv.DictReader(io.StringIO(text), delimiter=c.csv_delimiter))
        if not rows:
            raise SourceError(f"{c.url}: the CSV has no data rows")
        try:
            row = rows[c.csv_row]
        except IndexError:
            raise SourceError(f"{c.url}: the CSV has no row {c.csv_row}") from None
        missing = [column for column in wanted.values() if column not in row]
        if missing:
            raise SourceError(f"{c.url}: no column {missing[0]!r} in the CSV")
        return {key: row[column] for key, column in wanted.items()}

    def read(self, now: datetime) -> Readings:
        values = self._fields(self.fetch())
        fields: dict[str, Any] = {"counter": self.name}
        for key, value in values.items():
            fields[key] = as_count(value, f"{self.config.url} {key}")
        return [(Stream.COUNT, fields)]

    def describe(self) -> str:
        return self.config.url

    def close(self) -> None:
        pass
