"""Ruuhka: live occupancy and condition of public facilities."""

__version__ = "0.1.0"
