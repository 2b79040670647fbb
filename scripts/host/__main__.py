"""``python -m chipknit.host``: talk to a board's host bridge over a serial port.

Examples::

    python -m chipknit.host --port /dev/ttyUSB1 read 0x0 8
    python -m chipknit.host --port /dev/ttyUSB1 write 0x10 0xdeadbeef 0x12345678
    python -m chipknit.host --port /dev/ttyUSB1 counters
    python -m chipknit.host --port /dev/ttyUSB1 memtest --base 0 --words 1024
    python -m chipknit.host --port /dev/ttyUSB1 --package icebreaker memtest --words 256

``--package`` names the config the bitstream was built from (default: ``default``): the
beat width, the largest read and write and the baud rate come from its host bridge tile,
and ``counters`` reads its counter banks too. ``memtest`` is
:func:`chipknit.host.scripts.memory_test` and ``gemm`` is
:func:`chipknit.host.npu.gemm_demo`: the scripts the cocotb tests run against the simulated
package (``tb/tests/host_uart_bridge.py``, ``tb/tests/package_e2e.py``).
"""

import argparse
import json
import sys

from .host import Host, HostError, package_options, run
from .npu import NpuError, gemm_demo
from .scripts import memory_test
from .transport import SerialTransport


def _int(text: str) -> int:
    return int(text, 0)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chipknit.host",
                                     description="Read, write and test memory through the "
                                                 "chipknit host bridge on a serial port.")
    parser.add_argument("--port", required=True, help="serial port or pyserial URL")
    parser.add_argument("--package", default="default",
                        help="the package config of the bitstream, a shipped name or a TOML "
                             "file: the sizes below come from its host bridge (default: "
                             "default)")
    parser.add_argument("--baud", type=int,
                        help="the bitstream's baud rate (default: the package's)")
    parser.add_argument("--timeout", type=float, default=1.0,
                        help="seconds to wait for a response (default: 1)")
    parser.add_argument("--beat-bytes", type=int,
                        help="bytes per word, the network's data width / 8 (default: the "
                             "package's)")
    parser.add_argument("--max-write-beats", type=int,
                        help="the bridge's buffer_beats (default: the package's)")
    commands = parser.add_subparsers(dest="command", required=True)
    read = commands.add_parser("read", help="read N words from ADDR")
    read.add_argument("addr", type=_int)
    read.add_argument("n_words", type=_int)
    write = commands.add_parser("write", help="write words from ADDR")
    write.add_argument("addr", type=_int)
    write.add_argument("words", type=_int, nargs="+")
    commands.add_parser("counters", help="the bridge's counters")
    memtest = commands.add_parser("memtest", help="write, read back and compare")
    memtest.add_argument("--base", type=_int, default=0)
    memtest.add_argument("--words", type=_int, default=256)
    memtest.add_argument("--seed", type=int, default=1)
    gemm = commands.add_parser("gemm", help="run the end-to-end GEMM demo on every NPU of "
                                            "the package the board was built with")
    gemm.add_argument("--package", dest="gemm_package",
                      help="the same as the --package before the command (kept for scripts "
                           "that put it here)")
    gemm.add_argument("--seed", type=int, default=1)
    return parser


def connection(args):
    """The package top, baud rate and host options that ``args`` ask for: the package's
    host bridge's, overridden by ``--baud``, ``--beat-bytes`` and ``--max-write-beats``."""
    from chipknit.platforms.package_board import DEFAULT_BAUD
    from chipknit.rtl.package.config import Package
    from chipknit.rtl.package.top import PackageTop
    top = PackageTop(Package.load(getattr(args, "gemm_package", None) or args.package))
    if top.host is None:
        raise SystemExit(f"chipknit.host: package {top.package.name!r} has no host bridge")
    options = {**package_options(top), "timeout": args.timeout}
    for name in ("beat_bytes", "max_write_beats"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    baud = args.baud or top.host.params.get("baud", DEFAULT_BAUD)
    return top, baud, options


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    top, baud, options = connection(args)
    with SerialTransport(args.port, baud) as transport:
        try:
            if args.command == "memtest":
                result = run(lambda host: memory_test(host, args.base, args.words, args.seed),
                             transport, **options)
                print(json.dumps(result, indent=2))
                return 1 if result["errors"] else 0
            if args.command == "gemm":
                result = run(lambda host: gemm_demo(host, top, seed=args.seed), transport,
                             **options)
                print(json.dumps(result, indent=2))
                return 0 if result["exact"] else 1
            host = Host(transport, **options)
            if args.command == "read":
                for i, word in enumerate(host.read(args.addr, args.n_words)):
                    print(f"{args.addr + i * host.beat_bytes:#010x}: "
                          f"{word:#0{2 + 2 * host.beat_bytes}x}")
            elif args.command == "write":
                host.write(args.addr, args.words)
            else:
                print(json.dumps(host.read_counters(), indent=2))
        except (HostError, NpuError) as error:
            print(f"chipknit.host: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
