"""Alerts: conditions auto-scaling cannot fix by itself, as episodes people are told about once."""
