"""Maintenance crews: accounts, sessions, the maintenance log and the crew page.

Relational data (who may log what, and what was done when) lives in its own
SQLite file, whatever store holds the readings' time series.
"""
