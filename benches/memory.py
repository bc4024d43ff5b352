#!/usr/bin/env python3
"""Memory of a running gateway per idle keep-alive connection and per active principal.

usage: benches/memory.py PID PORT CA_PEM API_KEY TOKENS_FILE [IDLE=2000]
(principals are measured first, then the idle connections)

PID is the gateway's process, PORT its TLS port (loopback), CA_PEM the CA that signed its
certificate, API_KEY a key of role erp, TOKENS_FILE bench_kit's `tokens.txt` (one
`Authorization: Bearer ...` line per distinct principal). Prints two lines:
  idle_connection_bytes N   (VmRSS growth over IDLE open TLS connections that each made one
                             request and keep the connection alive, divided by IDLE)
  active_principal_bytes N  (VmRSS growth over one request by each principal in TOKENS_FILE,
                             divided by their count: token cache entry, buckets, what else a
                             principal leaves behind)
Every step is bounded: sockets have a 10 s timeout, counts are fixed.
"""
import socket
import ssl
import sys

PATH = "/v1/orders?start_date=2025-01-01&end_date=2025-06-30&page_size=20"


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS")


def connect(context, port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="localhost")


def request(conn, header):
    """One keep-alive GET; reads the whole answer (Content-Length framed) and returns the status."""
    conn.sendall(f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise SystemExit("connection closed before the answer")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise SystemExit("connection closed inside the answer")
        body += chunk
    return int(head.split(b" ", 2)[1])


def main():
    pid, port, ca, api_key, tokens = sys.argv[1:6]
    idle = int(sys.argv[6]) if len(sys.argv) > 6 else 2000
    port = int(port)
    context = ssl.create_default_context(cafile=ca)
    key_header = f"X-Api-Key: {api_key}"
    # Warm-up: the allocator's and the runtime's first growth is not charged to anyone.
    warm = [connect(context, port) for _ in range(50)]
    for conn in warm:
        for _ in range(20):
            assert request(conn, key_header) == 200
    # Principals first: closing the idle connections afterwards would hand pages back to the
    # system in the middle of the principals' window.
    with open(tokens) as f:
        headers = [line.strip() for line in f if line.strip()]
    conns = warm[:8]
    failed = 0
    before = rss_bytes(pid)
    for i, header in enumerate(headers):
        if request(conns[i % len(conns)], header) != 200:
            failed += 1
    after = rss_bytes(pid)
    print(f"active_principal_bytes {(after - before) / len(headers):.0f}")
    print(f"principal_requests_failed {failed}")
    if failed * 100 > len(headers):
        raise SystemExit(f"{failed} of {len(headers)} principals' requests failed")

    before = rss_bytes(pid)
    held = []
    for _ in range(idle):
        conn = connect(context, port)
        assert request(conn, key_header) == 200
        held.append(conn)
    after = rss_bytes(pid)
    print(f"idle_connection_bytes {(after - before) / idle:.0f}")
    for conn in held:
        conn.close()


if __name__ == "__main__":
    main()
