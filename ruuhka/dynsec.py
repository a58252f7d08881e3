"""Mosquitto's dynamic-security plugin: the broker's accounts and what each may do.

Why the plugin and not Mosquitto's password file and ACL: an ACL file cannot
refuse a SUBSCRIBE. A device that subscribes to the hubs' shared subscription
(``$share/ruuhka-hub/...``) is then handed its share of every reading, the ACL
refuses each delivery, and those readings are gone. The plugin refuses the
SUBSCRIBE itself: a device may subscribe to nothing.

Roles: one for hubs (read every device topic, also as a shared subscription;
read and write facility state), one per device (publish under its own prefix
only; the plugin does not substitute ``%c`` in its patterns), and one for the
admin account that ``ruuhka device`` uses to change the running broker over the
plugin's control topic.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ruuhka.contract import RESET_SEQ_TOPIC, TOPIC_ROOT

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
ADMIN_ROLE = "ruuhka-admin"
HUB_ROLE = "ruuhka-hub"
DEVICE_TOPICS = TOPIC_ROOT + "/devices"
FACILITY_TOPICS = TOPIC_ROOT + "/facilities"
# What the plugin applies where no role says otherwise: nobody publishes or
# subscribes unless a role allows it; what a client may subscribe to it may receive.
DEFAULT_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": True,
    "subscribe": False,
    "unsubscribe": True,
}


class ControlError(Exception):
    """The broker refused a change, or could not be asked; the message says why."""


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "priority": 0, "allow": True}


# Operators' commands to the hubs (ruuhka device reset-seq): added to roles created
# before there were any, the first time one is sent.
CONTROL_ACLS = {
    ADMIN_ROLE: [_acl("publishClientSend", RESET_SEQ_TOPIC)],
    HUB_ROLE: [_acl("subscribePattern", RESET_SEQ_TOPIC)],
}


def device_role(device: str) -> str:
    return f"device-{device}"


def role_document(rolename: str) -> dict[str, Any]:
    """A role as the plugin stores it (and as ``createRole`` takes it)."""
    if rolename == ADMIN_ROLE:
        acls = [
            _acl("publishClientSend", CONTROL_TOPIC + "/#"),
            _acl("publishClientReceive", CONTROL_TOPIC + "/#"),
            _acl("subscribePattern", CONTROL_TOPIC + "/#"),
            # To find and clear what a device left retained (ruuhka device clear-retained).
            _acl("subscribePattern", f"{DEVICE_TOPICS}/#"),
            _acl("publishClientSend", f"{DEVICE_TOPICS}/#"),
            *CONTROL_ACLS[ADMIN_ROLE],
        ]
    elif rolename == HUB_ROLE:
        acls = [
            _acl("subscribePattern", f"{DEVICE_TOPICS}/#"),
            # A shared subscription is checked with its $share prefix.
            _acl("subscribePattern", f"$share/+/{DEVICE_TOPICS}/#"),
            _acl("subscribePattern", f"{FACILITY_TOPICS}/#"),
            _acl("publishClientSend", f"{FACILITY_TOPICS}/#"),
            *CONTROL_ACLS[HUB_ROLE],
        ]
    elif rolename.startswith("device-"):
        acls = [_acl("publishClientSend", f"{DEVICE_TOPICS}/{rolename.removeprefix('device-')}/#")]
    else:
        raise ValueError(f"no such role: {rolename}")
    return {"rolename": rolename, "acls": acls}


def role_for(name: str, role: str) -> str:
    return HUB_ROLE if role == "hub" else device_role(name)


@dataclass(frozen=True)
class StoredPassword:
    """PBKDF2-SHA512 as both Mosquitto's password file (``$7$``) and the plugin keep it."""

    iterations: int
    salt: bytes
    digest: bytes

    @classmethod
    def from_passwd(cls, hashed: str) -> StoredPassword:
        """Read a ``mosquitto_passwd`` hash, so that a migration keeps every password."""
        parts = hashed.split("$")
        if len(parts) != 5 or parts[1] != "7":
            raise ValueError("not a Mosquitto 2.0 ($7$) password hash")
        salt, digest = base64.b64decode(parts[3]), base64.b64decode(parts[4])
        if len(salt) != 12 or len(digest) != 64:
            raise ValueError("unexpected salt or hash length in a $7$ hash")
        return cls(int(parts[2]), salt, digest)

    def client_fields(self) -> dict[str, Any]:
        return {
            "password": base64.b64encode(self.digest).decode(),
            "salt": base64.b64encode(self.salt).decode(),
            "iterations": self.iterations,
        }


def client_document(name: str, rolename: str, password: StoredPassword) -> dict[str, Any]:
    return {"username": name, "roles": [{"rolename": rolename}], **password.client_fields()}


def seed_document(
    admin: str, admin_password: StoredPassword, clients: dict[str, tuple[str, StoredPassword]]
) -> dict[str, Any]:
    """The plugin's file before the broker first starts with it: the admin account
    and every account already known (name -> role name, password)."""
    rolenames = {ADMIN_ROLE, HUB_ROLE} | {rolename for rolename, _ in clients.values()}
    return {
        "defaultACLAccess": DEFAULT_ACCESS,
        "clients": [client_document(admin, ADMIN_ROLE, admin_password)]
        + [client_document(name, r, p) for name, (r, p) in sorted(clients.items())],
        "groups": [],
        "roles": [role_document(r) for r in sorted(rolenames)],
    }


def add_commands(name: str, rolename: str, password: str, *, exists: bool) -> list[dict]:
    """Create the account (and its role), or give an existing one a new password."""
    if exists:
        return [{"command": "setClientPassword", "username": name, "password": password}]
    commands: list[dict[str, Any]] = []
    if rolename != HUB_ROLE:
        commands.append({"command": "createRole", **role_document(rolename)})
    commands.append(
        {
            "command": "createClient",
            "username": name,
            "password": password,
            "roles": [{"rolename": rolename}],
        }
    )
    return commands


def revoke_commands(name: str, rolename: str) -> list[dict]:
    """Delete the account (the plugin disconnects it at once), then its own role."""
    commands: list[dict[str, Any]] = [{"command": "deleteClient", "username": name}]
    if rolename != HUB_ROLE:
        commands.append({"command": "deleteRole", "rolename": rolename})
    return commands


class Control:
    """Changes the running broker through the plugin's control topic, as the admin."""

    def __init__(self, url: str, username: str, password: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ControlError(f"control URL {url!r} must be mqtt://host[:port] or mqtts://...")
        self.timeout_s = timeout_s
        self._responses: dict[str, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=username,
            protocol=mqtt.MQTTv5,
        )
        self._client.username_pw_set(username, password)
        if parts.scheme == "mqtts":
            self._client.tls_set()
        self._client.on_message = self._on_message
        self._retained: dict[str, int] = {}
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        try:
            self._client.connect(parts.hostname, port, keepalive=30)
        except OSError as exc:
            raise ControlError(f"cannot reach the broker at {url}: {exc}") from None
        self._client.loop_start()
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *args: subscribed.set()
        self._client.subscribe(RESPONSE_TOPIC, qos=1)
        if not subscribed.wait(timeout_s):
            self.close()
            raise ControlError(f"no answer from the broker at {url} (is the admin account right?)")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith(DEVICE_TOPICS + "/"):
            if msg.retain and msg.payload:
                with self._arrived:
                    self._retained[msg.topic] = len(msg.payload)
            return
        try:
            responses = json.loads(msg.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            return
        with self._arrived:
            for response in responses:
                if isinstance(response, dict) and "correlationData" in response:
                    self._responses[response["correlationData"]] = response
            self._arrived.notify_all()

    def run(self, commands: list[dict[str, Any]]) -> None:
        """Apply the commands in order; stop at the first the broker refuses."""
        for command in commands:
            tag = secrets.token_hex(8)
            self._client.publish(
                CONTROL_TOPIC, json.dumps({"commands": [{**command, "correlationData": tag}]}), 1
            )
            with self._arrived:
                if not self._arrived.wait_for(lambda t=tag: t in self._responses, self.timeout_s):
                    raise ControlError(
                        f"the broker did not answer {command['command']} "
                        "(is the dynamic-security plugin loaded?)"
                    )
                response = self._responses.pop(tag)
            if response.get("error"):
                raise ControlError(f"{command['command']}: {response['error']}")

    def list_clients(self) -> set[str]:
        tag = secrets.token_hex(8)
        request = {"command": "listClients", "verbose": False, "correlationData": tag}
        self._client.publish(CONTROL_TOPIC, json.dumps({"commands": [request]}), 1)
        with self._arrived:
            if not self._arrived.wait_for(lambda: tag in self._responses, self.timeout_s):
                raise ControlError("the broker did not answer listClients")
            response = self._responses.pop(tag)
        if response.get("error"):
            raise ControlError(f"listClients: {response['error']}")
        return set(response.get("data", {}).get("clients", []))

    def clear_retained(self, device: str, settle_s: float = 1.0) -> dict[str, int]:
        """Find what the broker keeps retained under the device's prefix and clear it
        (an empty retained message); returns topic -> bytes that were there."""
        done = threading.Event()
        self._client.on_subscribe = lambda *args: done.set()
        self._client.subscribe(f"{DEVICE_TOPICS}/{device}/#", qos=1)
        if not done.wait(self.timeout_s):
            raise ControlError("the broker did not answer the subscription")
        # The broker sends retained messages right after the SUBACK.
        threading.Event().wait(settle_s)
        self._client.unsubscribe(f"{DEVICE_TOPICS}/{device}/#")
        with self._arrived:
            found = dict(self._retained)
        for topic in found:
            self._client.publish(topic, b"", qos=1, retain=True).wait_for_publish(self.timeout_s)
        return found

    def reset_seq(self, command: bytes) -> None:
        """Send the hubs a seq reset, first letting the roles carry it if they predate it."""
        for rolename, acls in CONTROL_ACLS.items():
            for acl in acls:
                try:
                    self.run([{"command": "addRoleACL", "rolename": rolename, **acl}])
                except ControlError as exc:
                    if "already exists" not in str(exc):
                        raise
        info = self._client.publish(RESET_SEQ_TOPIC, command, qos=1)
        info.wait_for_publish(self.timeout_s)
        if not info.is_published():
            raise ControlError("the broker did not take the seq reset")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
