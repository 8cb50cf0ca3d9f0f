"""``python -m tests.fakeconsul [--port N] [--ttl-multiplier X]``: run a fake agent until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from tests.fakeconsul.server import FakeConsul


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakeconsul", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (the default)")
    parser.add_argument(
        "--ttl-multiplier",
        type=float,
        default=2.0,
        help="a TTL session expires TTL*X after its last renewal (Consul's value, the default: %(default)s)",
    )
    parser.add_argument("--acl-token", default=None, help="require this ACL token on every request")
    parser.add_argument("--node-name", default="fake-consul", help="the agent's node name (default: %(default)s)")
    args = parser.parse_args(argv)

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    fake = FakeConsul(
        args.port,
        host=args.host,
        acl_token=args.acl_token,
        ttl_multiplier=args.ttl_multiplier,
        node_name=args.node_name,
    ).start()
    print(fake.address, flush=True)
    try:
        while not stopping.wait(0.2):  # a short wait keeps the main thread responsive to signals
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
