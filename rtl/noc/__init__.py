"""Network on chip: routers, network interfaces, mesh generator (see docs/noc.md)."""
