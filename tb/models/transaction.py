"""Reference model of memory-mapped transactions on the NoC (imports no RTL).

The same contract as ``chipknit.rtl.noc.transaction`` (a test checks the head layouts bit
for bit): request packets on VC 0 (head ``{write, masked, tag, length, src}`` after
``dest``, ``addr_flits`` address flits, then for writes the data flits, each group of
``strobes_per_flit`` of them preceded by a strobe flit when ``masked``), response packets on
VC 1 (head ``{write, status, tag, length}``, then ``length + 1`` data flits for an OKAY
read). Also: the initiator interface's address-map decode (:class:`AddressMap`) and a memory
target (:class:`MemoryModel`) that answers as the memory tile does.
"""

from dataclasses import dataclass, field

from .noc import Dest, Flit, NocFormat

__all__ = ["OKAY", "DECODE_ERROR", "TARGET_ERROR", "TIMEOUT", "STATUS_NAMES", "REQUEST_VC",
           "RESPONSE_VC", "TransactionFormat", "RequestPacket", "ResponsePacket", "Malformed",
           "Region", "AddressMap", "MemoryModel"]

OKAY, DECODE_ERROR, TARGET_ERROR, TIMEOUT = 0, 1, 2, 3
STATUS_NAMES = {OKAY: "OKAY", DECODE_ERROR: "DECODE_ERROR", TARGET_ERROR: "TARGET_ERROR",
                TIMEOUT: "TIMEOUT"}
REQUEST_VC, RESPONSE_VC = 0, 1
STATUS_BITS = 2


class Malformed(ValueError):
    """A packet that breaks the format (the message says how)."""


def _pack(fields):
    """``[(value, bits), ...]`` LSB first into one integer."""
    value, shift = 0, 0
    for field_value, bits in fields:
        if not 0 <= field_value < 1 << bits:
            raise ValueError(f"{field_value} does not fit {bits} bits")
        value |= field_value << shift
        shift += bits
    return value


def _unpack(value, widths):
    out = []
    for bits in widths:
        out.append(value & ((1 << bits) - 1))
        value >>= bits
    return out


@dataclass(frozen=True)
class RequestPacket:
    dest: Dest
    src: Dest
    write: bool
    tag: int
    addr: int
    length: int
    masked: bool = False
    data: tuple = ()        # write beats
    strobes: tuple = ()     # one strobe per write beat (all ones when not masked)


@dataclass(frozen=True)
class ResponsePacket:
    dest: Dest
    write: bool
    status: int
    tag: int
    length: int
    data: tuple = ()        # OKAY reads only


@dataclass(frozen=True)
class TransactionFormat:
    noc: NocFormat = field(default_factory=NocFormat)
    addr_width: int = 32
    length_bits: int = 8
    tag_bits: int = 4

    @property
    def data_width(self) -> int:
        return self.noc.data_width

    @property
    def beat_bytes(self) -> int:
        return self.data_width // 8

    @property
    def strobe_width(self) -> int:
        return self.beat_bytes

    @property
    def full_strobe(self) -> int:
        return (1 << self.strobe_width) - 1

    @property
    def align_bits(self) -> int:
        return (self.beat_bytes - 1).bit_length()

    @property
    def addr_flits(self) -> int:
        return -(-self.addr_width // self.data_width)

    @property
    def strobes_per_flit(self) -> int:
        return self.data_width // self.strobe_width

    # Heads ------------------------------------------------------------------------------

    def request_head(self, *, write, masked, tag, length, src: Dest) -> int:
        """A request head flit's payload (after ``dest``)."""
        return _pack([(int(write), 1), (int(masked), 1), (tag, self.tag_bits),
                      (length, self.length_bits),
                      (self.noc.encode_dest(src), self.noc.dest_width)])

    def decode_request_head(self, payload: int) -> dict:
        write, masked, tag, length, src = _unpack(
            payload, [1, 1, self.tag_bits, self.length_bits, self.noc.dest_width])
        return {"write": bool(write), "masked": bool(masked), "tag": tag, "length": length,
                "src": self.noc.decode_dest(src)}

    def response_head(self, *, write, status, tag, length) -> int:
        return _pack([(int(write), 1), (status, STATUS_BITS), (tag, self.tag_bits),
                      (length, self.length_bits)])

    def decode_response_head(self, payload: int) -> dict:
        write, status, tag, length = _unpack(
            payload, [1, STATUS_BITS, self.tag_bits, self.length_bits])
        return {"write": bool(write), "status": status, "tag": tag, "length": length}

    # Packets ----------------------------------------------------------------------------

    def _flits(self, vc, words):
        return [self.noc.encode(Flit(head=i == 0, tail=i == len(words) - 1, vc=vc, data=w))
                for i, w in enumerate(words)]

    def encode_request(self, packet: RequestPacket) -> list[int]:
        """The packet's flits (encoded, VC 0)."""
        head = self.noc.head_data(packet.dest, self.request_head(
            write=packet.write, masked=packet.masked, tag=packet.tag, length=packet.length,
            src=packet.src))
        words = [head]
        mask = (1 << self.data_width) - 1
        for k in range(self.addr_flits):
            words.append(packet.addr >> (k * self.data_width) & mask)
        if packet.write:
            if len(packet.data) != packet.length + 1:
                raise ValueError(f"a write of length {packet.length} needs "
                                 f"{packet.length + 1} beats, not {len(packet.data)}")
            spf = self.strobes_per_flit
            for start in range(0, len(packet.data), spf):
                if packet.masked:
                    words.append(_pack([(s, self.strobe_width)
                                        for s in packet.strobes[start:start + spf]]))
                words.extend(packet.data[start:start + spf])
        return self._flits(REQUEST_VC, words)

    def request_flits(self, *, write, length, masked) -> int:
        flits = 1 + self.addr_flits
        if write:
            flits += length + 1
            if masked:
                flits += -(-(length + 1) // self.strobes_per_flit)
        return flits

    def decode_request(self, flits: list[int]) -> RequestPacket:
        """Parse a request packet; raises :class:`Malformed` if it breaks the format."""
        decoded = [self.noc.decode(f) for f in flits]
        if not decoded or not decoded[0].head:
            raise Malformed("no head flit")
        dest = self.noc.decode_dest(decoded[0].data)
        head = self.decode_request_head(self.noc.head_payload(decoded[0].data))
        want = self.request_flits(write=head["write"], length=head["length"],
                                  masked=head["masked"])
        if len(decoded) != want:
            raise Malformed(f"{len(decoded)} flits where the head says {want}")
        addr = 0
        for k in range(self.addr_flits):
            addr |= decoded[1 + k].data << (k * self.data_width)
        if addr >> self.addr_width or addr & ((1 << self.align_bits) - 1):
            raise Malformed(f"address {addr:#x} is unaligned or too wide")
        data, strobes = [], []
        body = [f.data for f in decoded[1 + self.addr_flits:]]
        spf = self.strobes_per_flit
        while body:
            if head["masked"]:
                group = _unpack(body.pop(0), [self.strobe_width] * spf)
            else:
                group = [self.full_strobe] * spf
            beats = body[:spf]
            del body[:spf]
            data.extend(beats)
            strobes.extend(group[:len(beats)])
        return RequestPacket(dest=dest, src=head["src"], write=head["write"], tag=head["tag"],
                             addr=addr, length=head["length"], masked=head["masked"],
                             data=tuple(data), strobes=tuple(strobes))

    def encode_response(self, packet: ResponsePacket) -> list[int]:
        head = self.noc.head_data(packet.dest, self.response_head(
            write=packet.write, status=packet.status, tag=packet.tag, length=packet.length))
        words = [head]
        if not packet.write and packet.status == OKAY:
            if len(packet.data) != packet.length + 1:
                raise ValueError("an OKAY read response carries length + 1 beats")
            words.extend(packet.data)
        return self._flits(RESPONSE_VC, words)

    def decode_response(self, flits: list[int]) -> ResponsePacket:
        decoded = [self.noc.decode(f) for f in flits]
        if not decoded or not decoded[0].head:
            raise Malformed("no head flit")
        dest = self.noc.decode_dest(decoded[0].data)
        head = self.decode_response_head(self.noc.head_payload(decoded[0].data))
        ok_read = not head["write"] and head["status"] == OKAY
        want = 1 + (head["length"] + 1 if ok_read else 0)
        if len(decoded) != want:
            raise Malformed(f"{len(decoded)} flits where the head says {want}")
        return ResponsePacket(dest=dest, data=tuple(f.data for f in decoded[1:]), **head)

    def response_beats(self, *, write, status, tag, length, data=()):
        """What the initiator's tile sees: ``[(write, tag, status, data, last), ...]``."""
        if write:
            return [(True, tag, status, 0, True)]
        if status != OKAY:
            data = [0] * (length + 1)
        return [(False, tag, status, d, i == length) for i, d in enumerate(data)]


@dataclass(frozen=True)
class Region:
    base: int
    size: int
    dest: Dest


@dataclass(frozen=True)
class AddressMap:
    fmt: TransactionFormat
    regions: tuple = ()

    def decode(self, addr: int, length: int):
        """``(status, dest, offset)``: OKAY with the target and the address in its region,
        or DECODE_ERROR (no region, unaligned, or the burst leaves its region)."""
        if addr & ((1 << self.fmt.align_bits) - 1):
            return DECODE_ERROR, None, None
        for region in self.regions:
            if region.base <= addr < region.base + region.size:
                offset = addr - region.base
                if offset + (length + 1) * self.fmt.beat_bytes > region.size:
                    return DECODE_ERROR, None, None
                return OKAY, region.dest, offset
        return DECODE_ERROR, None, None


class MemoryModel:
    """The memory tile: ``words`` beats of ``data_width`` bits, byte strobes."""

    def __init__(self, fmt: TransactionFormat, words: int, init=()):
        self.fmt = fmt
        self.words = words
        self.mem = [0] * words
        for i, value in enumerate(init):
            self.mem[i] = value

    def in_range(self, addr: int, length: int) -> bool:
        aligned = not addr & ((1 << self.fmt.align_bits) - 1)
        return aligned and (addr >> self.fmt.align_bits) + length < self.words

    def read(self, addr: int, length: int):
        """``(status, beats)``."""
        if not self.in_range(addr, length):
            return TARGET_ERROR, [0] * (length + 1)
        word = addr >> self.fmt.align_bits
        return OKAY, self.mem[word:word + length + 1]

    def write(self, addr: int, data, strobes) -> int:
        length = len(data) - 1
        if not self.in_range(addr, length):
            return TARGET_ERROR
        word = addr >> self.fmt.align_bits
        for i, (value, strobe) in enumerate(zip(data, strobes, strict=True)):
            old = self.mem[word + i]
            for byte in range(self.fmt.strobe_width):
                if strobe >> byte & 1:
                    mask = 0xFF << (8 * byte)
                    old = (old & ~mask) | (value & mask)
            self.mem[word + i] = old
        return OKAY
