"""Reaching nodes: the agent session (JSON lines over any byte pipe), the local and SSH transports, fan-out."""
