"""A stand-in for the runner (`kslim run JOB --output DIR`) in the local kubelet's network test.

Plays the two workers of a multi-node job the way Paddle's rendezvous meets, without Paddle: the
leader listens on its own pod IP at the port of PADDLE_MASTER (`<own IP>:<port>`), the follower
resolves the host of its PADDLE_MASTER (`<job>-worker-0:<port>`), retrying until the name
resolves and the leader answers, and says hello from its own pod IP. The job file is JSON:
{"role": "leader" | "follower", "timeout": seconds}. Each records what it saw in DIR/net.json.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any


def leader(host: str, port: int, timeout: float, record: dict[str, Any]) -> None:
    with socket.create_server((host, port)) as server:
        server.settimeout(timeout)
        connection, peer = server.accept()
        with connection:
            connection.settimeout(timeout)
            record["peer_address"] = peer[0]
            record["peer_said"] = connection.recv(256).decode()
            connection.sendall(f"hello from {socket.gethostname()}".encode())


def follower(host: str, port: int, timeout: float, record: dict[str, Any]) -> None:
    deadline, attempts = time.monotonic() + timeout, 0
    while True:
        attempts += 1
        try:
            address = socket.gethostbyname(host)
            with socket.create_connection((address, port), timeout=5, source_address=(own_ip(), 0)) as sock:
                sock.sendall(f"hello from {socket.gethostname()}".encode())
                record["leader_said"] = sock.recv(256).decode()
            record.update(resolved=address, attempts=attempts)
            return
        except OSError as error:
            record["last_error"] = str(error)
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def own_ip() -> str:
    return os.environ["POD_IP"]


def main(argv: list[str]) -> int:
    if argv[:1] != ["run"] or "--output" not in argv:
        print(f"usage: kslim run JOB --output DIR (got {argv})", file=sys.stderr)
        return 2
    knobs = json.loads(Path(argv[1]).read_text())
    output = Path(argv[argv.index("--output") + 1])
    output.mkdir(parents=True, exist_ok=True)
    host, _, port = os.environ["PADDLE_MASTER"].rpartition(":")
    record: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "env": {k: v for k, v in os.environ.items() if k in ("POD_IP", "PADDLE_MASTER", "HOSTNAME")},
        "pid": os.getpid(),
    }
    code = 0
    try:
        play = leader if knobs["role"] == "leader" else follower
        play(host, int(port), float(knobs.get("timeout", 60)), record)
    except OSError as error:
        record["error"] = str(error)
        code = 1
    record["hosts"] = Path("/etc/hosts").read_text()
    (output / "net.json").write_text(json.dumps(record))
    print(json.dumps(record), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
