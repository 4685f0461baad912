"""Run a server that binds every interface so that only this machine's loopback can reach it.

``python -m data_aggregator.sandbox.loopback_only --inner-port P -- COMMAND...``

Amazon DynamoDB Local has no bind-address option: it listens on ``0.0.0.0``. Rather than trust a
firewall we may not control, the command runs in a network namespace of its own that holds nothing
but a loopback interface, where "every interface" means loopback. This process makes the way in:

1. it binds a listening socket on the host's ``127.0.0.1`` (a free port) *before* leaving the host's
   network namespace: a socket keeps the namespace it was created in;
2. it moves itself into a new network namespace (as root; otherwise inside a new user namespace
   where it maps itself to root), brings that namespace's ``lo`` up and starts the command there;
3. it relays each connection accepted on the host socket to ``127.0.0.1:P`` inside the namespace.

The host port is printed on stdout as ``PORT <n>`` before the command starts, so that a parent can
ask for a free port without a race. The command dies with this process (``PR_SET_PDEATHSIG``), and
this process exits with the command's exit status when the command ends on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import struct
import sys
from collections.abc import Sequence

from data_aggregator.sandbox.server import PORT_LINE_PREFIX

# Linux ioctl and prctl numbers (linux/sockios.h, linux/if.h, linux/prctl.h).
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_PR_SET_PDEATHSIG = 1
_RELAY_CHUNK = 256 * 1024
EXIT_NO_NAMESPACE = 3


class NamespaceUnavailableError(RuntimeError):
    """Neither a network namespace nor a user namespace could be made: nothing would confine the server."""


def enter_private_network() -> str:
    """Move this (single-threaded) process into a network namespace with only ``lo``, up; say how."""
    try:
        os.unshare(os.CLONE_NEWNET)
        how = "network namespace"
    except PermissionError:
        uid, gid = os.getuid(), os.getgid()
        try:
            os.unshare(os.CLONE_NEWUSER | os.CLONE_NEWNET)
        except OSError as exc:
            raise NamespaceUnavailableError(
                f"cannot create a network namespace (not root) nor a user namespace ({exc.strerror}); "
                "DynamoDB Local would listen on every interface, so it is not started"
            ) from exc
        # Map ourselves to root inside, which grants CAP_NET_ADMIN over the new network namespace only.
        with open("/proc/self/setgroups", "w", encoding="ascii") as setgroups:
            setgroups.write("deny")
        with open("/proc/self/uid_map", "w", encoding="ascii") as uid_map:
            uid_map.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w", encoding="ascii") as gid_map:
            gid_map.write(f"0 {gid} 1")
        how = "user and network namespace"
    _loopback_up()
    return how


def _loopback_up() -> None:
    """``ip link set lo up`` without needing iproute2 on the machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH", fcntl.ioctl(sock, _SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | _IFF_UP, b""))


def die_with_parent() -> None:
    """For ``preexec_fn``: the kernel kills the child when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(_RELAY_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _relay_one(inner_port: int, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
    try:
        upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", inner_port)
    except OSError:  # the server is not up yet, or gone: the client sees a closed connection and retries
        client.close()
        return
    try:
        await asyncio.gather(_pipe(client_reader, upstream), _pipe(upstream_reader, client))
    finally:
        for writer in (upstream, client):
            writer.close()


async def _serve(listener: socket.socket, inner_port: int, command: Sequence[str]) -> int:
    server = await asyncio.start_server(
        lambda reader, writer: _relay_one(inner_port, reader, writer), sock=listener, limit=_RELAY_CHUNK
    )
    # Started through asyncio so that its exit and our signals are awaited on one loop.
    # Its output goes to our stderr: stdout carries only the PORT line, which a parent may stop reading.
    child = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=sys.stderr.fileno(), preexec_fn=die_with_parent
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, child.terminate)
    try:
        return await child.wait()
    finally:
        server.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the command's exit status, or 3 when no namespace could be made."""
    parser = argparse.ArgumentParser(prog="python -m data_aggregator.sandbox.loopback_only")
    parser.add_argument("--inner-port", type=int, required=True, help="the port COMMAND listens on")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        how = enter_private_network()
    except NamespaceUnavailableError as exc:
        print(f"loopback_only: {exc}", file=sys.stderr)
        return EXIT_NO_NAMESPACE
    print(f"loopback_only: {command[0]} runs in a {how} of its own", file=sys.stderr)
    print(f"{PORT_LINE_PREFIX}{listener.getsockname()[1]}", flush=True)
    status = asyncio.run(_serve(listener, args.inner_port, command))
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
