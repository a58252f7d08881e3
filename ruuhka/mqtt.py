"""One way to build a paho client from settings, shared by hub and edge."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ruuhka.settings import MqttSettings

SESSION_NEVER_EXPIRES = 0xFFFFFFFF


def make_client(
    settings: MqttSettings,
    client_id: str,
    *,
    persistent: bool,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A client whose session (subscriptions, unacknowledged messages) can outlive it."""
    v5 = settings.protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent,
        manual_ack=manual_ack,
    )
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.tls:
        client.tls_set(
            ca_certs=str(settings.ca_file) if settings.ca_file else None,
            certfile=str(settings.cert_file) if settings.cert_file else None,
            keyfile=str(settings.key_file) if settings.key_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.max_queued_messages_set(0)
    return client


def connect_async(
    client: mqtt.Client,
    settings: MqttSettings,
    *,
    persistent: bool,
    receive_maximum: int | None = None,
) -> None:
    """Start connecting in the background; paho keeps reconnecting on its own."""
    if settings.protocol == "5":
        props = Properties(PacketTypes.CONNECT)
        if persistent:
            props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        if receive_maximum:
            props.ReceiveMaximum = receive_maximum
        client.connect_async(
            settings.host,
            settings.port,
            keepalive=settings.keepalive_s,
            clean_start=not persistent,
            properties=props,
        )
    else:
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
    client.loop_start()
