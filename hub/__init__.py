"""The hub: ingest from the broker, store, derive facility state, serve the API and page."""
