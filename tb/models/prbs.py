"""Reference model of the PRBS patterns (imports no RTL).

A Fibonacci LFSR on an integer: the new bit is the XOR of the two tap bits, shifted in at
the bottom, and is also the output bit. Words take ``width`` output bits, first bit in bit 0.
"""

__all__ = ["PRBS_POLYNOMIALS", "prbs_bits", "prbs_words"]

# ITU-T O.150 / common SerDes patterns: order -> the two exponents of x^a + x^b + 1.
PRBS_POLYNOMIALS = {7: (7, 6), 9: (9, 5), 15: (15, 14), 23: (23, 18), 31: (31, 28)}


def prbs_bits(order: int, seed: int, count: int) -> list[int]:
    a, b = PRBS_POLYNOMIALS[order]
    mask = (1 << order) - 1
    state = seed & mask
    bits = []
    for _ in range(count):
        new = ((state >> (a - 1)) ^ (state >> (b - 1))) & 1
        state = ((state << 1) | new) & mask
        bits.append(new)
    return bits


def prbs_words(order: int, seed: int, width: int, count: int) -> list[int]:
    bits = prbs_bits(order, seed, width * count)
    return [sum(bit << i for i, bit in enumerate(bits[n * width:(n + 1) * width]))
            for n in range(count)]
