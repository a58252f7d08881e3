"""``ruuhka store quarantine``: the messages ingest refused, for operators.

Every refused device message is counted by reason in ``/metrics``; the first
ten a minute per sender and reason are also kept, with their payload (its first
16 KiB), so that an operator can see what a device sent and why it was refused.
"""

from __future__ import annotations

import base64
import json
import sys

from hub.config import HubSettings
from hub.store import Quarantined, open_store


def _preview(payload: bytes, width: int = 160) -> str:
    text = payload.decode("utf-8", errors="backslashreplace")
    return repr(text if len(text) <= width else text[:width] + "…")


def _as_json(q: Quarantined) -> dict[str, object]:
    return {
        "at": q.at.isoformat(),
        "topic": q.topic,
        "device": q.device,
        "reason": q.reason,
        "detail": q.detail,
        "size": q.size,
        "payload_b64": base64.b64encode(q.payload).decode(),
    }


def run_command(
    settings: HubSettings, device: str | None, reason: str | None, limit: int, as_json: bool
) -> int:
    store = open_store(settings.store.url, settings.store)
    try:
        entries = store.quarantined(device, reason, limit)
    finally:
        store.close()
    if as_json:
        print(json.dumps([_as_json(q) for q in entries], indent=2))
        return 0
    if not entries:
        print("nothing in quarantine" + (" that matches" if device or reason else ""))
        return 0
    for q in entries:
        print(f"{q.at.isoformat(timespec='seconds')}  {q.device}  {q.reason}  {q.size:,} bytes")
        print(f"    topic   {q.topic}")
        print(f"    detail  {q.detail[:300]}")
        print(f"    payload {_preview(q.payload)}")
    print(f"{len(entries)} shown, newest first", file=sys.stderr)
    return 0
