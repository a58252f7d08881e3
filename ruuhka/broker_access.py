"""Who may do what on the broker: accounts in Mosquitto's dynamic-security plugin.

A device logs in with its device id as user name and may publish only under
``ruuhka/v1/devices/{its id}/#``; it may subscribe to nothing (the plugin
refuses the SUBSCRIBE, so no device can take a share of the hubs' shared
subscription). A hub account may read every device topic and read and write
facility state; nobody else may publish facility state.

``ruuhka device`` keeps ``accounts.toml`` (role, facility, created; no secrets)
and changes the running broker through the plugin's control topic with an admin
account whose password is in ``admin.toml`` (0600) beside it. The broker keeps
the password hashes in the plugin's own file and saves every change at once;
nothing needs a reload. ``ruuhka device init`` writes that file before the
broker first starts with the plugin, with the admin account and, when migrating
from a password file, every account already there with its password unchanged.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import grp
import hashlib
import json
import os
import pwd
import re
import secrets
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ruuhka import dynsec
from ruuhka.contract import DEVICE_ID_PATTERN, ResetSeq

DEFAULT_DIR = Path("/etc/mosquitto/ruuhka")
DEFAULT_CONTROL_URL = "mqtt://127.0.0.1:1883"
# Where Debian's Mosquitto keeps its state; the broker (user mosquitto) writes it.
DEFAULT_PLUGIN_FILE = Path("/var/lib/mosquitto/dynamic-security.json")
DEFAULT_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
ADMIN_NAME = "ruuhka-admin"
HUB_NAME_PATTERN = r"^[a-z0-9_.-]{1,64}$"
FACILITY_PATTERN = r"^[a-z0-9-]{1,64}$"
_HUB_NAME_RE = re.compile(HUB_NAME_PATTERN)
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
_FACILITY_RE = re.compile(FACILITY_PATTERN)
# Mosquitto's own format: $7$ = PBKDF2-HMAC-SHA512, then iterations, salt, hash.
# Passwords are 192 random bits, so the iteration count is not what protects them.
PBKDF2_ITERATIONS = 1000
SALT_BYTES = 12
PASSWORD_BYTES = 24
FILE_MODE = 0o640
SECRET_MODE = 0o600


class AccessError(Exception):
    """An account operation that cannot be done; the message says why."""


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["device", "hub"]
    facility: str | None = Field(default=None, pattern=FACILITY_PATTERN)
    created: AwareDatetime


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: dict[str, Account] = Field(default_factory=dict)


class AdminCredentials(BaseModel):
    """``admin.toml``: the account that changes the broker's accounts."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=HUB_NAME_PATTERN)
    password: str = Field(min_length=16)


@dataclass(frozen=True)
class AccessFiles:
    registry: Path
    admin: Path

    @classmethod
    def in_dir(cls, directory: Path) -> AccessFiles:
        return cls(directory / "accounts.toml", directory / "admin.toml")


def hash_password(password: str) -> str:
    """The hash Mosquitto 2.0 checks (the ``$7$`` form of ``mosquitto_passwd``)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def registry_text(registry: Registry) -> str:
    lines = [
        "# Accounts on the broker, kept by 'ruuhka device'. No secrets here:",
        "# the broker keeps the password hashes in its dynamic-security file.",
    ]
    for name in sorted(registry.accounts):
        account = registry.accounts[name]
        lines += ["", f"[accounts.{name}]", f'role = "{account.role}"']
        if account.facility is not None:
            lines.append(f'facility = "{account.facility}"')
        lines.append(f"created = {account.created.isoformat()}")
    return "\n".join(lines) + "\n"


def load_registry(path: Path) -> Registry:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Registry()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AccessError(f"{path}: cannot read: {exc}") from None
    try:
        return Registry.model_validate(data)
    except ValidationError as exc:
        raise AccessError(f"{path}: invalid registry: {exc}") from None


def load_admin(path: Path) -> AdminCredentials:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AccessError(
            f"{path} does not exist: set the broker up with 'ruuhka device init' first "
            "(a broker on password and ACL files: see the migration steps in the docs)"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AccessError(f"{path}: cannot read: {exc}") from None
    try:
        return AdminCredentials.model_validate(data)
    except ValidationError as exc:
        raise AccessError(f"{path}: invalid admin credentials: {exc}") from None


def passwd_hashes(path: Path) -> dict[str, str]:
    """user -> hash from a Mosquitto password file (for a migration)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessError(f"{path}: cannot read: {exc}") from None
    hashes = {}
    for line in text.splitlines():
        user, sep, hashed = line.partition(":")
        if sep and not line.startswith("#"):
            hashes[user] = hashed.strip()
    return hashes


def _write_atomic(path: Path, text: str, mode: int = FILE_MODE) -> None:
    """Replace ``path`` whole, so nobody reads half a file; keeps its mode and
    owner, or makes a new file with ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        old = path.stat()
        mode, owner = old.st_mode & 0o777, (old.st_uid, old.st_gid)
    except FileNotFoundError:
        owner = _default_owner() if mode == FILE_MODE else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        if owner is not None and os.geteuid() == 0:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _default_owner() -> tuple[int, int] | None:
    """root:mosquitto when run as root, so that the broker's group can read the file."""
    if os.geteuid() != 0:
        return None
    try:
        return 0, grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        return None


@contextlib.contextmanager
def _locked(files: AccessFiles) -> Iterator[Registry]:
    """Hold an exclusive lock so two operators cannot interleave changes."""
    files.registry.parent.mkdir(parents=True, exist_ok=True)
    lock_path = files.registry.with_name(files.registry.name + ".lock")
    with open(lock_path, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield load_registry(files.registry)


def init_broker(files: AccessFiles, plugin_file: Path, passwd: Path | None = None) -> int:
    """Write the plugin's file for its first start: the admin account and, from a
    password file, every registry account with its password unchanged. Returns how
    many accounts were carried over."""
    if plugin_file.exists():
        raise AccessError(
            f"{plugin_file} exists: the broker already keeps its accounts there "
            "(remove it only if this broker has never started with it)"
        )
    if files.admin.exists():
        raise AccessError(f"{files.admin} exists: this directory is already set up")
    registry = load_registry(files.registry)
    hashes = passwd_hashes(passwd) if passwd is not None else {}
    clients = {}
    for name, account in registry.accounts.items():
        if name not in hashes:
            continue
        try:
            stored = dynsec.StoredPassword.from_passwd(hashes[name])
        except ValueError as exc:
            raise AccessError(f"{passwd}: {name}: {exc}") from None
        clients[name] = (dynsec.role_for(name, account.role), stored)
    admin = AdminCredentials(username=ADMIN_NAME, password=new_password())
    admin_hash = dynsec.StoredPassword.from_passwd(hash_password(admin.password))
    document = dynsec.seed_document(admin.username, admin_hash, clients)
    _write_atomic(plugin_file, json.dumps(document, indent=2) + "\n", SECRET_MODE)
    _give_to_broker(plugin_file)
    _write_atomic(
        files.admin,
        f'username = "{admin.username}"\npassword = "{admin.password}"\n',
        SECRET_MODE,
    )
    return len(clients)


def _give_to_broker(path: Path) -> None:
    """The plugin rewrites its file on every change: the broker's user must own it."""
    if os.geteuid() != 0:
        return
    with contextlib.suppress(KeyError):
        user = pwd.getpwnam("mosquitto")
        os.chown(path, user.pw_uid, user.pw_gid)


def _control(files: AccessFiles, url: str) -> dynsec.Control:
    admin = load_admin(files.admin)
    try:
        return dynsec.Control(url, admin.username, admin.password)
    except dynsec.ControlError as exc:
        raise AccessError(str(exc)) from None


def add_account(
    files: AccessFiles,
    control_url: str,
    name: str,
    role: Literal["device", "hub"],
    facility: str | None = None,
    *,
    rotate: bool = False,
) -> str:
    """Create (or with ``rotate``, re-key) an account; returns its new password."""
    if role == "device":
        if not _DEVICE_ID_RE.fullmatch(name):
            raise AccessError(f"device id {name!r} must match {DEVICE_ID_PATTERN}")
        if facility is None or not _FACILITY_RE.fullmatch(facility):
            raise AccessError(f"facility {facility!r} must match {FACILITY_PATTERN}")
    elif not _HUB_NAME_RE.fullmatch(name):
        raise AccessError(f"hub account {name!r} must match {HUB_NAME_PATTERN}")
    if name == ADMIN_NAME:
        raise AccessError(f"{name!r} is the admin account's name")
    with _locked(files) as registry:
        existing = registry.accounts.get(name)
        if existing is not None and not rotate:
            raise AccessError(f"{name!r} exists ({existing.role}); use --rotate for a new password")
        if existing is not None and existing.role != role:
            raise AccessError(f"{name!r} is a {existing.role} account, not a {role} account")
        if existing is not None and facility is None:
            facility = existing.facility
        created = existing.created if existing else datetime.now(UTC).replace(microsecond=0)
        password = new_password()
        commands = dynsec.add_commands(
            name, dynsec.role_for(name, role), password, exists=existing is not None
        )
        with _control(files, control_url) as control:
            try:
                control.run(commands)
            except dynsec.ControlError as exc:
                raise AccessError(f"the broker refused: {exc}") from None
        registry.accounts[name] = Account(role=role, facility=facility, created=created)
        _write_atomic(files.registry, registry_text(registry))
        return password


def revoke_account(files: AccessFiles, control_url: str, name: str) -> Account:
    """Remove the account from the broker (which cuts it off at once), then the registry."""
    with _locked(files) as registry:
        account = registry.accounts.get(name)
        if account is None:
            raise AccessError(f"no account {name!r} in {files.registry}")
        with _control(files, control_url) as control:
            try:
                control.run(dynsec.revoke_commands(name, dynsec.role_for(name, account.role)))
            except dynsec.ControlError as exc:
                if "not found" not in str(exc).lower():
                    raise AccessError(f"the broker refused: {exc}") from None
        del registry.accounts[name]
        _write_atomic(files.registry, registry_text(registry))
        return account


@dataclass(frozen=True)
class MosquittoConfig:
    """What the production Mosquitto configuration depends on."""

    plugin: Path = DEFAULT_PLUGIN
    plugin_file: Path = DEFAULT_PLUGIN_FILE
    tls_port: int = 8883
    certfile: Path = Path("/etc/mosquitto/certs/server.crt")
    keyfile: Path = Path("/etc/mosquitto/certs/server.key")
    # A hub on the same machine connects here: loopback only, still authenticated.
    local_port: int | None = 1883
    local_address: str = "127.0.0.1"
    # A snapshot may carry up to 1 MiB (the hub's max_image_payload_bytes) plus topic
    # and headers; a reading is a few hundred bytes.
    max_packet_size: int = 1024 * 1024 + 4096
    # Only the hub subscribes, so this is how much the hub may fall behind (or be
    # down) before the broker drops readings.
    max_queued_messages: int = 10_000_000
    max_queued_bytes: int = 1024**3
    max_inflight_messages: int = 1000
    max_connections: int = 5000
    max_keepalive: int = 600


def mosquitto_conf(config: MosquittoConfig) -> str:
    """A drop-in for /etc/mosquitto/conf.d/: the plugin, authenticated listeners, limits.

    Debian's main mosquitto.conf keeps persistence, the pid file and logging."""
    # Listener settings: before any 'listener' line they would open a default one.
    listener = [
        f"max_connections {config.max_connections}",
        # The client id is the account's name: nobody can take over another
        # account's session (e.g. a device connecting as the hub's client id).
        "use_username_as_clientid true",
    ]
    lines = [
        "# Ruuhka's broker: generated by 'ruuhka device mosquitto-conf'.",
        "# Accounts: 'ruuhka device init' once, then 'ruuhka device add|add-hub|revoke'.",
        "",
        "# The same accounts and rules on every listener.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"plugin {config.plugin}",
        f"plugin_opt_config_file {config.plugin_file}",
        "",
        "# Limits. A packet above max_packet_size closes the sender's connection.",
        f"max_packet_size {config.max_packet_size}",
        "# Messages held for a subscriber (the hub) that is offline or behind: about a",
        "# day's readings of 100 devices at one a second, whichever cap comes first.",
        f"max_queued_messages {config.max_queued_messages}",
        f"max_queued_bytes {config.max_queued_bytes}",
        f"max_inflight_messages {config.max_inflight_messages}",
        f"max_keepalive {config.max_keepalive}",
        "# A session nobody resumes for this long is forgotten.",
        "persistent_client_expiration 30d",
        "",
        "# Devices and remote hubs: TLS only (TLS 1.2 at least).",
        f"listener {config.tls_port}",
        f"certfile {config.certfile}",
        f"keyfile {config.keyfile}",
        "tls_version tlsv1.2",
        *listener,
    ]
    if config.local_port is not None:
        lines += [
            "",
            "# A hub on this machine, and 'ruuhka device': loopback only, the same accounts.",
            f"listener {config.local_port} {config.local_address}",
            *listener,
        ]
    return "\n".join(lines) + "\n"


def find_plugin() -> Path:
    """The plugin as Debian installs it on this machine's architecture."""
    found = sorted(Path("/usr/lib").glob("*/mosquitto_dynamic_security.so"))
    return found[0] if found else DEFAULT_PLUGIN


# The command line -------------------------------------------------------

Command = Callable[[argparse.Namespace], int]


def _files(args: argparse.Namespace) -> AccessFiles:
    base = AccessFiles.in_dir(args.dir)
    return AccessFiles(args.registry or base.registry, base.admin)


def _cmd_init(args: argparse.Namespace) -> int:
    carried = init_broker(_files(args), args.plugin_file, args.from_passwd)
    print(f"# wrote {args.plugin_file} (the broker's accounts) and {_files(args).admin} (0600)")
    if args.from_passwd is not None:
        print(f"# {carried} account(s) carried over from {args.from_passwd}, passwords unchanged")
    print("# next: ruuhka device mosquitto-conf > /etc/mosquitto/conf.d/ruuhka.conf")
    print("#       systemctl restart mosquitto")
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    password = add_account(
        _files(args), args.control_url, args.device, "device", args.facility, rotate=args.rotate
    )
    print(f"# Device {args.device} ({args.facility}): this password is shown once only.")
    print(
        "\n".join(
            [
                "# The device's edge.toml (keep it chmod 600):",
                f'device_id = "{args.device}"',
                "[mqtt]",
                f'url = "{args.broker_url}"',
                f'username = "{args.device}"',
                f'password = "{password}"',
                f'ca_file = "{args.ca_file}"',
                "",
                f"# The hub's config, under [[facilities]] id = {args.facility!r}:",
                "[[facilities.sources]]",
                f'device = "{args.device}"',
            ]
        )
    )
    return 0


def _cmd_add_hub(args: argparse.Namespace) -> int:
    password = add_account(_files(args), args.control_url, args.name, "hub", rotate=args.rotate)
    print(f"# Hub account {args.name}: this password is shown once only.")
    print("# In the hub's environment (or its config file, chmod 600):")
    print(f"RUUHKA_MQTT__USERNAME={args.name}")
    print(f"RUUHKA_MQTT__PASSWORD={password}")
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    account = revoke_account(_files(args), args.control_url, args.name)
    print(f"# revoked {args.name} ({account.role}); the broker has cut it off")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    files = _files(args)
    registry = load_registry(files.registry)
    with _control(files, args.control_url) as control:
        try:
            on_broker = control.list_clients()
        except dynsec.ControlError as exc:
            raise AccessError(str(exc)) from None
    print(f"{'account':<32} {'role':<7} {'facility':<24} {'created':<26} on broker")
    for name in sorted(registry.accounts):
        account = registry.accounts[name]
        state = "yes" if name in on_broker else "MISSING"
        print(
            f"{name:<32} {account.role:<7} {account.facility or '-':<24} "
            f"{account.created.isoformat():<26} {state}"
        )
    for name in sorted(on_broker - registry.accounts.keys() - {ADMIN_NAME}):
        print(f"{name:<32} {'?':<7} {'-':<24} {'-':<26} not in registry")
    return 0


def _cmd_reset_seq(args: argparse.Namespace) -> int:
    if not _DEVICE_ID_RE.fullmatch(args.device):
        raise AccessError(f"device id {args.device!r} must match {DEVICE_ID_PATTERN}")
    command = ResetSeq(device=args.device, at=datetime.now(UTC))
    with _control(_files(args), args.control_url) as control:
        try:
            control.reset_seq(command.model_dump_json().encode())
        except dynsec.ControlError as exc:
            raise AccessError(str(exc)) from None
    print(
        f"# the seq of {args.device} is reset on every hub: its next reading starts again "
        "(hubs that are down now get this when they reconnect)"
    )
    return 0


def _cmd_clear_retained(args: argparse.Namespace) -> int:
    if not _DEVICE_ID_RE.fullmatch(args.device):
        raise AccessError(f"device id {args.device!r} must match {DEVICE_ID_PATTERN}")
    with _control(_files(args), args.control_url) as control:
        try:
            cleared = control.clear_retained(args.device)
        except dynsec.ControlError as exc:
            raise AccessError(str(exc)) from None
    for topic, size in sorted(cleared.items()):
        print(f"cleared {topic} ({size} bytes)")
    print(f"# {len(cleared)} retained message(s) of {args.device} cleared")
    return 0


def _cmd_conf(args: argparse.Namespace) -> int:
    config = MosquittoConfig(
        plugin=args.plugin,
        plugin_file=args.plugin_file,
        certfile=args.certfile,
        keyfile=args.keyfile,
    )
    print(mosquitto_conf(config), end="")
    return 0


def _run(func: Command) -> Command:
    """An operator's mistake is one line on stderr and exit code 1, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except AccessError as exc:
            print(f"ruuhka device: {exc}", file=sys.stderr)
            return 1

    return run


def add_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``ruuhka device ...`` on the main parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("RUUHKA_BROKER_DIR", DEFAULT_DIR)),
        help=f"where accounts.toml and admin.toml live (default {DEFAULT_DIR}, "
        "or $RUUHKA_BROKER_DIR)",
    )
    common.add_argument("--registry", type=Path, help="the accounts registry (TOML)")
    broker = argparse.ArgumentParser(add_help=False)
    broker.add_argument(
        "--control-url",
        default=os.environ.get("RUUHKA_BROKER_CONTROL_URL", DEFAULT_CONTROL_URL),
        help=f"the broker to change (default {DEFAULT_CONTROL_URL}, or $RUUHKA_BROKER_CONTROL_URL)",
    )
    changes = argparse.ArgumentParser(add_help=False, parents=[common, broker])
    changes.add_argument("--rotate", action="store_true", help="replace an existing password")
    plugin_file = argparse.ArgumentParser(add_help=False)
    plugin_file.add_argument(
        "--plugin-file",
        type=Path,
        default=DEFAULT_PLUGIN_FILE,
        help=f"the dynamic-security plugin's file (default {DEFAULT_PLUGIN_FILE})",
    )

    device = sub.add_parser("device", help="device and hub accounts on the broker")
    commands = device.add_subparsers(dest="device_command", required=True)

    p = commands.add_parser(
        "init", parents=[common, plugin_file], help="set the broker's accounts up (once)"
    )
    p.add_argument(
        "--from-passwd",
        type=Path,
        help="carry the registry's accounts over from this Mosquitto password file",
    )
    p.set_defaults(func=_run(_cmd_init))

    p = commands.add_parser("add", parents=[changes], help="a device account")
    p.add_argument("device", help="device id, [a-z0-9-]{1,64}")
    p.add_argument("--facility", required=True, help="the facility it reports for")
    p.add_argument("--broker-url", default="mqtts://broker.example.fi:8883")
    p.add_argument("--ca-file", default="/etc/ruuhka/ca.crt")
    p.set_defaults(func=_run(_cmd_add))

    p = commands.add_parser("add-hub", parents=[changes], help="a hub account")
    p.add_argument("name", nargs="?", default="ruuhka-hub")
    p.set_defaults(func=_run(_cmd_add_hub))

    p = commands.add_parser("revoke", parents=[common, broker], help="remove an account")
    p.add_argument("name")
    p.set_defaults(func=_run(_cmd_revoke))

    p = commands.add_parser("list", parents=[common, broker], help="accounts and their state")
    p.set_defaults(func=_run(_cmd_list))

    p = commands.add_parser(
        "clear-retained",
        parents=[common, broker],
        help="clear what a device left retained on the broker",
    )
    p.add_argument("device")
    p.set_defaults(func=_run(_cmd_clear_retained))

    p = commands.add_parser(
        "reset-seq",
        parents=[common, broker],
        help="make every hub forget a device's seq (after a bad one was stored)",
    )
    p.add_argument("device")
    p.set_defaults(func=_run(_cmd_reset_seq))

    p = commands.add_parser(
        "mosquitto-conf",
        parents=[plugin_file],
        help="print the production Mosquitto configuration",
    )
    p.add_argument("--plugin", type=Path, default=find_plugin())
    p.add_argument("--certfile", type=Path, default=MosquittoConfig.certfile)
    p.add_argument("--keyfile", type=Path, default=MosquittoConfig.keyfile)
    p.set_defaults(func=_run(_cmd_conf))
