"""Stepping through a recorded trace: the player (one QTimer), the transport bar and the chain-rule view."""
