"""Host scripts written once, run against the simulation and the boards.

Each is ``async def script(host, ...)`` over an :class:`~chipknit.host.AsyncHost`: a cocotb
test awaits it with a simulation transport, ``python -m chipknit.host`` runs it on a
board's serial port through :func:`chipknit.host.run`.
"""

import random

__all__ = ["memory_test", "SCRIPTS"]


async def memory_test(host, base: int = 0, n_words: int = 256, seed: int = 1) -> dict:
    """Write random words in random-sized bursts (some byte-masked), read them back in
    other bursts, and compare.

    Returns ``{"words", "commands", "errors", "first_error"}``; ``errors`` counts words
    read back wrong.
    """
    rng = random.Random(seed)
    width = 8 * host.beat_bytes
    expected = [0] * n_words
    known = [False] * n_words
    commands = 0
    at = 0
    while at < n_words:
        burst = min(n_words - at, rng.randint(1, host.max_write_beats))
        words = [rng.getrandbits(width) for _ in range(burst)]
        await host.write(base + at * host.beat_bytes, words)
        expected[at:at + burst] = words
        known[at:at + burst] = [True] * burst
        commands += 1
        at += burst
    # Byte-masked rewrites of a few words.
    for _ in range(max(1, n_words // 32)):
        index = rng.randrange(n_words)
        word, strobe = rng.getrandbits(width), rng.getrandbits(host.beat_bytes)
        await host.write(base + index * host.beat_bytes, [word], strobes=[strobe])
        for byte in range(host.beat_bytes):
            if strobe >> byte & 1:
                mask = 0xFF << (8 * byte)
                expected[index] = (expected[index] & ~mask) | (word & mask)
        commands += 1
    got = []
    while len(got) < n_words:
        burst = min(n_words - len(got), rng.randint(1, host.max_read_beats))
        got += await host.read(base + len(got) * host.beat_bytes, burst)
        commands += 1
    wrong = [i for i in range(n_words) if got[i] != expected[i]]
    first = None
    if wrong:
        i = wrong[0]
        first = {"addr": base + i * host.beat_bytes, "read": got[i], "wrote": expected[i]}
    return {"words": n_words, "commands": commands, "errors": len(wrong),
            "first_error": first}


#: Scripts ``python -m chipknit.host run NAME`` knows.
SCRIPTS = {"memtest": memory_test}
