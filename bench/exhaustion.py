"""``python -m bench.exhaustion``: a real ``sluice serve`` under the two resource attacks of issue 16.

1. **Idle sockets** (SECURITY.md case 34, issue 16.5): ``--sockets`` connections (4,200 by default, above the
   default ``server.max_connections`` of 4,096) that send nothing, spread over 17 loopback source addresses so the
   per-address cap does not hide the global bound; then ``--probes`` ``/health/live`` calls, each on a new
   connection. Reported: the median and worst latency (must be < 1 s) and how many connections the server holds.
2. **A huge body to the login route** (case 38, issue 16.4): a 150 MiB chunked POST to ``/admin/v1/auth/login``.
   Reported: the status, how much was sent before the refusal, and the server's RSS before and after.
3. **A 64 MiB header** (issue 16.11): one header value that never ends. Reported as 2.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.procs import Processes, free_port, wait_until
from bench.targets import _sluice_argv

SOURCES = [f"127.0.0.{n}" for n in range(2, 19)]  # 17 addresses: 4,200 sockets stay under 256 per address


def _health(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def idle_sockets(port: int, count: int, probes: int) -> dict[str, float]:
    opened: list[socket.socket] = []
    try:
        for n in range(count):
            addr = (SOURCES[n % len(SOURCES)], 0)
            try:
                opened.append(socket.create_connection(("127.0.0.1", port), timeout=5, source_address=addr))
            except OSError:
                break
        latencies = []
        failures = 0
        for _ in range(probes):
            started = time.perf_counter()
            try:
                ok = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not ok
        return {
            "sockets_opened": len(opened),
            "health_median_ms": round(statistics.median(latencies), 1),
            "health_worst_ms": round(max(latencies), 1),
            "health_failures": failures,
        }
    finally:
        for sock in opened:
            sock.close()


def huge_login_body(port: int, mib: int) -> dict[str, object]:
    piece = b" " * 65536
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    start = (
        b"POST /admin/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    return _send_until_refused(port, start, frame, len(piece), mib)  # counted: the body bytes, not the framing


def huge_header(port: int, mib: int) -> dict[str, object]:
    return _send_until_refused(port, b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a" * 65536, 65536, mib)


def _send_until_refused(port: int, start: bytes, frame: bytes, counts: int, mib: int) -> dict[str, object]:
    """Send ``start``, then ``frame`` (``counts`` bytes of payload each) until ``mib`` MiB or the server stops it."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(start)
        try:
            while sent < mib * 1024 * 1024:
                sock.sendall(frame)
                sent += counts
        except OSError:
            pass
        try:
            status = sock.recv(100).split(b"\r\n", 1)[0].decode()
        except OSError as exc:
            status = f"no answer ({type(exc).__name__})"
    return {"status": status, "sent_mib": round(sent / 1048576, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.exhaustion", description=__doc__.splitlines()[0])
    p.add_argument("--sockets", type=int, default=4200)
    p.add_argument("--probes", type=int, default=50)
    p.add_argument("--body-mib", type=int, default=150)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sluice-exhaustion-") as tmp:
        procs = Processes(Path(tmp))
        try:
            config = Path(tmp) / "sluice.yaml"
            config.write_text(yaml.safe_dump({"master_key": "sk-bench-exhaustion-0123456789abcdef"}), encoding="utf-8")
            port = free_port()
            argv_ = _sluice_argv("serve", "--config", str(config), "--port", str(port), "--data-dir", f"{tmp}/data")
            child = procs.start("sluice", argv_, {"SLUICE_JWT_SECRET": "bench-" + "x" * 40})
            wait_until("sluice did not start", lambda: _health(port), 60, child)
            conns = idle_sockets(port, args.sockets, args.probes)
            before = child.rss_mb()
            body = huge_login_body(port, args.body_mib)
            after = child.rss_mb()
            header = huge_header(port, 64)
            after_header = child.rss_mb()
        finally:
            procs.stop_all()
    print("| measure | value |\n|---|---|")
    print(f"| idle sockets opened | {conns['sockets_opened']:g} |")
    print(
        f"| /health/live on a new connection: median / worst | {conns['health_median_ms']} / "
        f"{conns['health_worst_ms']} ms ({conns['health_failures']:g} failed) |"
    )
    print(f"| {args.body_mib} MiB chunked POST to the login route | {body['status']}, after {body['sent_mib']} MiB |")
    print(f"| server RSS before / after it | {before:.0f} / {after:.0f} MB |")
    print(f"| a 64 MiB header | {header['status']}, after {header['sent_mib']} MiB; RSS after: {after_header:.0f} MB |")
    return 0 if conns["health_failures"] == 0 and conns["health_worst_ms"] < 1000 else 1


if __name__ == "__main__":
    raise SystemExit(main())
