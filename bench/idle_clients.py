#!/usr/bin/env python3
"""Hold N idle, registered WebSocket connections open to an httpws proxy.

Connections are spread over several 127.0.0.x source addresses (one source/destination pair
has only ~28k ephemeral ports). Prints "ready N" once every connection has its `:host`
indication, then holds them until stdin closes. Raw asyncio streams, no WebSocket library:
the client side stays small and nothing here answers for the proxy.
"""
import argparse
import asyncio
import base64
import os
import ssl
import sys


async def register(host, port, source, name, tls):
    # With TLS, the certificate must name "localhost" (bench/idle_rss.sh makes one that does).
    extra = {"ssl": tls, "server_hostname": "localhost"} if tls else {}
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0), **extra)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /{name} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"{name}: {head.splitlines()[0]!r}")
    first = await reader.readexactly(2)
    payload = await reader.readexactly(first[1] & 0x7F)
    if not payload.startswith(b":host "):
        raise RuntimeError(f"{name}: expected :host, got {payload!r}")
    return writer


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--conns", type=int, default=10_000)
    parser.add_argument("--sources", type=int, default=8, help="use 127.0.0.2 .. 127.0.0.(1+N)")
    parser.add_argument("--parallel", type=int, default=256)
    parser.add_argument("--tls-ca", help="connect with TLS (wss://), trusting this PEM CA")
    args = parser.parse_args()
    tls = ssl.create_default_context(cafile=args.tls_ca) if args.tls_ca else None

    sources = [f"127.0.0.{2 + i}" for i in range(args.sources)]
    gate = asyncio.Semaphore(args.parallel)
    writers = []

    async def one(i):
        async with gate:
            writers.append(await register(args.host, args.port, sources[i % len(sources)], f"idle-{i}", tls))

    await asyncio.gather(*(one(i) for i in range(args.conns)))
    print(f"ready {len(writers)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in writers:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
