"""Tiles: what sits on a router's local port behind a network interface."""
