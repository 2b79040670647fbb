"""The package: dies, tiles, die-to-die links, cross-die routing and its deadlock check
(see docs/package.md and docs/noc.md)."""
