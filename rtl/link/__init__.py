"""Die-to-die link layer: lanes, interposer model, framing, CRC, replay, credits and
training (see docs/link.md)."""
