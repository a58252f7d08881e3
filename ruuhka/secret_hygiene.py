"""Keeping secrets out of logs, and out of files everyone can read.

Secrets in settings are ``SecretStr`` (their repr is masked), and no code logs
them. As a second line, every log record of the process has the configured
secret values replaced by ``***`` before any handler sees it, whatever logger
(ours, uvicorn's, paho's) made it and whether it is in the message, its
arguments or a traceback. And a config file that holds a secret but is readable
by every local user gets a warning at start.
"""

from __future__ import annotations

import logging
import re
import stat
import tomllib
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

log = logging.getLogger("ruuhka.secrets")

MASK = "***"
# Keys whose values are secrets, wherever they appear in a config file.
SECRET_KEY_RE = re.compile(r"password|passwd|secret|token|api_?key|private_?key", re.I)
# Shorter values are not masked: "***" in place of every "1" would ruin the logs.
MIN_MASKED_LENGTH = 4

_masked: set[str] = set()
_installed = False


def secret_values(value: Any) -> Iterator[str]:
    """Every SecretStr/SecretBytes value inside a settings model, however nested."""
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, SecretBytes):
        yield value.get_secret_value().decode("utf-8", "replace")
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from secret_values(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from secret_values(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from secret_values(item)


def mask(text: str) -> str:
    for secret in sorted(_masked, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def mask_in_logs(secrets: Iterable[str]) -> None:
    """From now on, these values never appear in a log record of this process."""
    global _installed
    _masked.update(s for s in secrets if len(s) >= MIN_MASKED_LENGTH)
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not _masked:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the handler's to report
            return record
        masked = mask(message)
        if masked != message:
            # Only then: some formatters (uvicorn's access log) need the original args.
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            if mask(text) != text:
                record.exc_text = mask(text)
        return record

    logging.setLogRecordFactory(factory)


def secret_keys(data: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the non-empty secret values in parsed TOML."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if SECRET_KEY_RE.search(str(key)) and isinstance(value, str) and value:
                found.append(path)
            else:
                found += secret_keys(value, path)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found += secret_keys(item, f"{prefix}[{index}]")
    return found


def warn_if_exposed(path: Path | None) -> list[str]:
    """Warn when a config file with secrets in it is world-readable; returns their keys."""
    if path is None:
        return []
    try:
        mode = path.stat().st_mode
        keys = secret_keys(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    if not keys or not mode & stat.S_IROTH:
        return []
    log.warning(
        "%s holds secrets (%s) and every user on this machine can read it (mode %s): "
        "run chmod o-r on it, or move the secrets to RUUHKA_... environment variables",
        path,
        ", ".join(keys),
        oct(stat.S_IMODE(mode)),
    )
    return keys


def protect(path: Path | None, settings: BaseModel) -> None:
    """What every role does after loading its settings."""
    mask_in_logs(secret_values(settings))
    warn_if_exposed(path)
