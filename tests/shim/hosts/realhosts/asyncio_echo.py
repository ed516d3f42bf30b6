"""asyncio_echo.py PORT — an asyncio stream server (selector event loop on epoll): each connection
is echoed line by line until the client half-closes, then the server writes "bye N lines" and
closes. Prints "ready" once listening; exits after 3 connections."""
import asyncio
import sys

done = 0


async def handle(reader, writer):
    global done
    n = 0
    while True:
        line = await reader.readline()
        if not line:
            break
        n += 1
        writer.write(b"echo " + line)
        await writer.drain()
    writer.write(b"bye %d lines\n" % n)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    done += 1
    if done == 3:
        asyncio.get_running_loop().call_soon(stop.set)


async def main():
    global stop
    stop = asyncio.Event()
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    async with server:
        await stop.wait()
    print("served 3", flush=True)


asyncio.run(main())
