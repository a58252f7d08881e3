"""The on-site agent: read sources, keep every reading in an outbox, publish over MQTT."""
