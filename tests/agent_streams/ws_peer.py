"""Both ends of a WebSocket for tests/agent_streams.rs, with the `websockets` package.

`server`: an echo service on 127.0.0.1 (its port printed on stdout). Text and binary
messages come back as they came; `ping-me` makes it ping the client and answer `pong-came`
once the pong is back; `close-me` makes it close with code 4001.

`client PORT`: connects to `ws://bob/echo` over a TCP connection to 127.0.0.1:PORT (an
agent's --listen port; `Host: bob` names the endpoint) and checks that text, binary, a
large message, pings both ways and closes both ways pass; prints `ok` at the end.
"""

import asyncio
import socket
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

LIMIT = 10


async def run_server():
    async def handler(ws):
        async for message in ws:
            if message == "ping-me":
                pong = await ws.ping(b"from-server")
                await asyncio.wait_for(pong, LIMIT)
                await ws.send("pong-came")
            elif message == "close-me":
                await ws.close(4001, "the server closes")
                return
            else:
                await ws.send(message)

    async with serve(handler, "127.0.0.1", 0, ping_interval=None, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


def dial(port):
    return connect(
        "ws://bob/echo",
        sock=socket.create_connection(("127.0.0.1", port)),
        proxy=None,
        ping_interval=None,
        open_timeout=LIMIT,
        max_size=None,
    )


async def run_client(port):
    async with dial(port) as ws:
        await ws.send("hello, text")
        assert await asyncio.wait_for(ws.recv(), LIMIT) == "hello, text"
        binary = b"\x00\x01 binary \xfe\xff"
        await ws.send(binary)
        assert await asyncio.wait_for(ws.recv(), LIMIT) == binary
        large = bytes(range(256)) * 4096 * 3
        await ws.send(large)
        assert await asyncio.wait_for(ws.recv(), LIMIT) == large, "the 3 MiB message"
        pong = await ws.ping(b"from-client")
        await asyncio.wait_for(pong, LIMIT)
        await ws.send("ping-me")
        assert await asyncio.wait_for(ws.recv(), LIMIT) == "pong-came"
        await ws.close(4000, "the client closes")
        # The close handshake finished: the server's echo of our code came back.
        assert ws.close_code == 4000, ws.close_code
    async with dial(port) as ws:
        await ws.send("close-me")
        try:
            await asyncio.wait_for(ws.recv(), LIMIT)
            raise AssertionError("a message instead of the close")
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4001, closed
    print("ok", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(run_server())
    else:
        asyncio.run(run_client(int(sys.argv[2])))
