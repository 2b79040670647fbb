"""Memory-mapped transactions: what a tile sees of the network, and how it is packetised.

A tile never sees flits or routers. An *initiator* (the NPU's DMA, the host bridge) issues
reads and writes on three streams and gets responses back; a *target* (the memory tile, a
register bank) serves them on the same three streams, flipped. The network interfaces
(:mod:`~chipknit.rtl.noc.interface`) turn them into packets and back.

Streams (``lib.stream``, ready/valid, one transfer per cycle where both are high)
---------------------------------------------------------------------------------
``request``  one beat per transaction: :meth:`TransactionParams.request_layout`
             ``{write, addr, length, tag}``; ``length`` is the number of data beats minus
             one (so ``0`` is one beat, ``2**length_bits`` beats at most). Addresses count
             bytes and a beat is ``data_width`` bits; ``addr`` must be beat aligned (the low
             ``log2(data_width/8)`` bits are zero, or the request is malformed).
``wdata``    a write's ``length + 1`` beats, in order, after (or together with) its request:
             :meth:`TransactionParams.wdata_layout` ``{data, strobe, last}``. ``strobe`` has
             one bit per byte; ``last`` marks the final beat. Reads send nothing here.
``response`` :meth:`TransactionParams.response_layout` ``{write, tag, status, data, last}``.
             A read gets exactly ``length + 1`` beats, ``last`` on the final one, *also when
             it fails* (``data`` is then 0 and every beat carries the error status), so an
             initiator can always count beats. A write gets one beat (``last`` = 1, ``data``
             = 0). A read whose response breaks off part way (its target was reset, or the
             packet ended early) gets its remaining beats with the error status, so the
             status may change from OKAY to an error within one read; a tile treats a read
             as failed if any beat is not OKAY. Responses to one initiator come back in the
             order the requests left it: the network keeps order per source/destination/VC
             and a target answers in order, and the initiator interface sends to a new
             destination only when no response is awaited from the previous one (see
             :mod:`~chipknit.rtl.noc.interface`); ``tag`` is echoed so an initiator may also
             match them.

A target answers by the same rules, and decides the status before the first beat: all
beats of one read response carry the same status (the target's network interface sends an
error as a head-only packet and drops the remaining beats). A target always consumes a
write's ``length + 1`` data beats, also when it refuses the write, and sends the write's
response only after its last data beat.

An initiator may have several requests outstanding (up to ``2**tag_bits`` per network
interface); a target must accept requests while it still owes responses or the pipeline
stalls, but it never has to — flow control is ready/valid throughout.

Status (:class:`Status`)
------------------------
``OKAY``          done.
``DECODE_ERROR``  no target: the address hits no region of the initiator's address map
                  (answered at once by the initiator's network interface, never sent).
``TARGET_ERROR``  the target refused it: address out of its range, a malformed packet
                  (wrong length, unaligned address), an unsupported access.
``TIMEOUT``       no response within the initiator interface's timeout (the packet was
                  dropped as unroutable, or the target is gone). A late response that
                  arrives after its timeout is dropped and counted. The timeout runs while
                  the request is the oldest one awaiting its response, so time spent behind
                  older responses (or a tile slow to take them) does not count.

Every error is counted where it is decided; none of them stops the network.

Packets (requests on VC :data:`REQUEST_VC`, responses on VC :data:`RESPONSE_VC`)
------------------------------------------------------------------------------
Flit data is ``data_width`` bits, LSB first as in :mod:`~chipknit.rtl.noc.flit`. The head
flit's payload (after ``dest``) is :meth:`TransactionParams.request_head_layout` or
:meth:`TransactionParams.response_head_layout`:

=========================  ===========================================================
request packet             flits
=========================  ===========================================================
head                       ``dest`` (the target's node), then ``{write, masked, tag,
                           length, src}``; ``src`` is the initiator's node (a dest
                           value), where the response goes
address                    ``addr_flits`` flits: the byte address *within the target's
                           region* (the initiator interface subtracts the region base)
data (writes only)         ``length + 1`` flits of data; when ``masked`` is set, a
                           strobe flit comes before every group of ``strobes_per_flit``
                           data flits (the group's strobes, first beat lowest).
                           Unmasked writes write whole beats. The initiator interface
                           sends every write masked (it cannot know a burst's strobes
                           before its head leaves); unmasked packets are accepted.
=========================  ===========================================================

=========================  ===========================================================
response packet            flits
=========================  ===========================================================
head                       ``dest`` (the initiator's ``src``), then ``{write, status,
                           tag, length}``
data (OKAY reads only)     ``length + 1`` flits
=========================  ===========================================================

A failed read's response is only its head; the initiator interface expands it to
``length + 1`` error beats. So the length of every well-formed packet follows from its
head, and a packet whose tail comes early or late is *malformed*.

``chipknit.tb.models.transaction`` encodes the same packets without importing RTL, and a
test checks that the two agree.
"""

from dataclasses import dataclass

from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .flit import FlitFormat

__all__ = ["Status", "REQUEST_VC", "RESPONSE_VC", "TransactionParams",
           "InitiatorSignature", "TargetSignature"]

#: VC (message class) of request packets.
REQUEST_VC = 0
#: VC of response packets. Separate classes, so a response never waits behind a request.
RESPONSE_VC = 1


class Status(enum.Enum, shape=2):
    OKAY = 0
    DECODE_ERROR = 1
    TARGET_ERROR = 2
    TIMEOUT = 3


@dataclass(frozen=True)
class TransactionParams:
    """Shape of memory-mapped transactions and their packets.

    Parameters
    ----------
    flit : FlitFormat
        The network's flit format. A beat of data is one flit's ``data_width`` bits.
    addr_width : int
        Byte address bits carried in a request (within the target's region).
    length_bits : int
        Width of ``length`` (beats − 1): a transaction moves at most ``2**length_bits``
        beats.
    tag_bits : int
        Width of ``tag``: an initiator interface keeps up to ``2**tag_bits`` requests in
        flight.
    """
    flit: FlitFormat = FlitFormat()
    addr_width: int = 32
    length_bits: int = 8
    tag_bits: int = 4

    def __post_init__(self):
        if not isinstance(self.flit, FlitFormat):
            raise TypeError(f"Flit format must be a FlitFormat, not {self.flit!r}")
        for name in ("addr_width", "length_bits", "tag_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be a positive "
                                 f"integer, not {value!r}")
        if self.data_width % 8:
            raise ValueError(f"Flit data width {self.data_width} is not a whole number of "
                             f"bytes")
        if self.flit.vcs < 2:  # FlitFormat already insists; kept for the message
            raise ValueError("Transactions need two VCs (requests and responses)")
        for name, layout in (("request", self.request_head_layout),
                             ("response", self.response_head_layout)):
            room = self.flit.data_width - self.flit.dest_width
            if layout.size > room:
                raise ValueError(f"The {name} head needs {layout.size} payload bits but a "
                                 f"head flit has {room} after the destination; widen the "
                                 f"flit or narrow length/tag")

    @property
    def data_width(self) -> int:
        return self.flit.data_width

    @property
    def strobe_width(self) -> int:
        return self.data_width // 8

    @property
    def beat_bytes(self) -> int:
        return self.data_width // 8

    @property
    def align_bits(self) -> int:
        """Low address bits that must be zero (byte offset within a beat)."""
        return (self.beat_bytes - 1).bit_length()

    @property
    def addr_flits(self) -> int:
        return -(-self.addr_width // self.data_width)

    @property
    def strobes_per_flit(self) -> int:
        """Beats whose strobes one strobe flit carries (masked writes)."""
        return self.data_width // self.strobe_width

    @property
    def max_beats(self) -> int:
        return 1 << self.length_bits

    @property
    def status_shape(self):
        return Status

    # Streams seen by tiles ---------------------------------------------------------------

    @property
    def request_layout(self) -> data.StructLayout:
        return data.StructLayout({"write": 1, "addr": self.addr_width,
                                  "length": self.length_bits, "tag": self.tag_bits})

    @property
    def wdata_layout(self) -> data.StructLayout:
        return data.StructLayout({"data": self.data_width, "strobe": self.strobe_width,
                                  "last": 1})

    @property
    def response_layout(self) -> data.StructLayout:
        return data.StructLayout({"write": 1, "tag": self.tag_bits, "status": Status,
                                  "data": self.data_width, "last": 1})

    # Packet heads ------------------------------------------------------------------------

    @property
    def request_head_layout(self) -> data.StructLayout:
        """A request head flit's payload (after ``dest``), LSB first."""
        return data.StructLayout({"write": 1, "masked": 1, "tag": self.tag_bits,
                                  "length": self.length_bits,
                                  "src": self.flit.dest_layout})

    @property
    def response_head_layout(self) -> data.StructLayout:
        """A response head flit's payload (after ``dest``), LSB first."""
        return data.StructLayout({"write": 1, "status": Status, "tag": self.tag_bits,
                                  "length": self.length_bits})

    def packet_flits(self, *, write: bool, length: int, masked: bool = False) -> int:
        """Flits of a well-formed request packet."""
        flits = 1 + self.addr_flits
        if write:
            beats = length + 1
            flits += beats
            if masked:
                flits += -(-beats // self.strobes_per_flit)
        return flits

    def response_flits(self, *, write: bool, length: int, ok: bool = True) -> int:
        """Flits of a well-formed response packet."""
        return 1 if write or not ok else 1 + length + 1


def _check_params(params):
    if not isinstance(params, TransactionParams):
        raise TypeError(f"Transaction parameters must be a TransactionParams, "
                        f"not {params!r}")


class _TransactionSignature(wiring.Signature):
    """The three transaction streams, seen from the side that issues requests."""

    def __init__(self, params: TransactionParams):
        _check_params(params)
        self._params = params
        super().__init__({
            "request": Out(stream.Signature(params.request_layout)),
            "wdata": Out(stream.Signature(params.wdata_layout)),
            "response": In(stream.Signature(params.response_layout)),
        })

    @property
    def params(self) -> TransactionParams:
        return self._params

    def __eq__(self, other):
        return type(other) is type(self) and other.params == self.params

    def __repr__(self):
        return f"{type(self).__name__}({self.params!r})"


class InitiatorSignature(_TransactionSignature):
    """An initiator's port, seen from the initiator (the tile).

    Members
    -------
    request : Out(stream.Signature(request_layout))
    wdata : Out(stream.Signature(wdata_layout))
    response : In(stream.Signature(response_layout))
    """


class TargetSignature(_TransactionSignature):
    """A target's port, seen from the network interface that drives it.

    The target itself takes ``In(TargetSignature(params))``, i.e. the flipped view: it
    receives ``request`` and ``wdata`` and sends ``response``. (The same members as
    :class:`InitiatorSignature`; the two types say which end of a port a component is.)

    Members
    -------
    request : Out(stream.Signature(request_layout))
    wdata : Out(stream.Signature(wdata_layout))
    response : In(stream.Signature(response_layout))
    """
