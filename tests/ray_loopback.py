"""``ray`` for tests: Ray's own command line, with every node kept on 127.0.0.1.

``ray start --node-ip-address=127.0.0.1`` alone is not enough: Ray replaces a loopback address
with the machine's routable one (``services.resolve_ip_for_localhost``), so its nodes would
register, and talk to each other, on the machine's network interface. Tests must never send
traffic to any address but loopback, so this wrapper keeps loopback addresses as given and then
runs Ray's unmodified CLI: ``python -m tests.ray_loopback start --head ...``.
"""

from __future__ import annotations

import sys


def keep_loopback() -> None:
    """Make Ray use 127.0.0.1 where it is given (instead of resolving it to the routable IP)."""
    import ray._private.services as services
    services.resolve_ip_for_localhost = lambda host: host


if __name__ == "__main__":
    keep_loopback()
    from ray.scripts.scripts import main
    sys.argv[0] = "ray"
    sys.exit(main())
