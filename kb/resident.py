"""``kb index`` handed to the service that serves the same index folder.

A running service listens on a Unix socket in its index folder. ``kb index`` finds it there and
asks the service to build: the service has the model loaded and the published version, the
parse cache and every article's chunks in memory, so it re-indexes a one-article edit in less
time than a fresh process takes to import its libraries, and it serves the new version as soon
as it is published. Only the user the service runs as is answered: the socket is theirs alone
and each peer's uid is checked. Without a service, ``kb index`` builds in its own process.

The protocol is JSON lines. The command sends one request: its working folder, its ``KB_*``
environment and its flags, from which the service reads settings as the command would have.
The service answers with ``{"progress": [done, total]}``, ``{"out": line}`` and ``{"err":
line}`` messages, then ``{"exit": status}``; or with ``{"declined": reason}``, and the command
builds itself.

Standard library only: the command reaches this module before anything else of kb is imported.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import struct
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Send = Callable[[dict[str, Any]], None]
    Handler = Callable[[dict[str, Any], Send], None]

SOCKET = ".service.sock"
FLAGS = ("articles", "index", "model", "calibration")  # the `kb index` options a service takes
MAX_ADDRESS = 107  # bytes in a Unix socket path (sun_path less its terminating NUL)
REQUEST_TIMEOUT = 10.0  # seconds a connected command has to send its request


def hand_over(argv: list[str]) -> int | None:
    """Run ``kb <argv>`` in the service if it is an index command one can run: the exit
    status, or None when this process is to do the work itself."""
    flags = index_flags(argv)
    if flags is None:
        return None
    folder = flags.get("index") or _environ("KB_INDEX") or "index"
    sock = _connect(os.path.join(folder, SOCKET))
    if sock is None:
        return None
    with sock:
        request = {"cwd": os.getcwd(), "flags": flags,
                   "env": {k: v for k, v in os.environ.items() if k.upper().startswith("KB_")}}
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            return _follow(sock.makefile("r", encoding="utf-8"))
        except OSError as exc:
            print(f"error: lost the service building the index: {exc}", file=sys.stderr)
            return 1


def index_flags(argv: list[str]) -> dict[str, str] | None:
    """The flags of ``kb index [--articles DIR] [--index DIR] [--model M] [--calibration F]``;
    None for any other command line (``--local``, ``--help``, typos: the full CLI's business)."""
    if not argv or argv[0] != "index":
        return None
    flags: dict[str, str] = {}
    rest = iter(argv[1:])
    for arg in rest:
        name, eq, value = arg.partition("=")
        if not name.startswith("--") or name[2:] not in FLAGS:
            return None
        if not eq:
            value = next(rest, None)  # type: ignore[assignment]
            if value is None:
                return None
        flags[name[2:]] = value
    return flags


def _environ(name: str) -> str | None:
    # Settings read the environment without regard to case; so does this.
    return next((v for k, v in os.environ.items() if k.upper() == name), None)


def _address(path: str) -> str | None:
    """``path`` as short as it can be said from here: Unix socket paths are short."""
    best = min(os.path.abspath(path), os.path.relpath(path), key=len)
    return best if len(best.encode()) <= MAX_ADDRESS else None


def _connect(path: str) -> socket.socket | None:
    address = _address(path)
    if address is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except OSError:  # no service (or it stopped and left its socket behind)
        sock.close()
        return None
    return sock


def _follow(replies) -> int | None:
    """Print what the service says; its last word is the exit status (None: build here)."""
    bar = sys.stderr.isatty()
    for line in replies:
        message = json.loads(line)
        if "progress" in message and bar:
            done, total = message["progress"]
            end = "\n" if done >= total else ""
            print(f"\rembedding (in the service): {done}/{total}", end=end, file=sys.stderr,
                  flush=True)
        elif "out" in message:
            print(message["out"], flush=True)
        elif "err" in message:
            print(message["err"], file=sys.stderr, flush=True)
        elif "exit" in message:
            return int(message["exit"])
        elif "declined" in message:
            print(f"note: {message['declined']}; building in this process", file=sys.stderr)
            return None
    print("error: the service stopped before the build finished", file=sys.stderr)
    return 1


def alive(path: str) -> bool:
    sock = _connect(path)
    if sock is None:
        return False
    sock.close()
    return True


class Listener:
    """Takes ``kb index`` requests on the socket in ``folder``, one at a time, in a thread of
    its own, and hands each to ``handle`` with a function that sends messages back."""

    def __init__(self, folder: str | os.PathLike[str], handle: Handler) -> None:
        self.path = os.path.join(folder, SOCKET)
        self._handle = handle
        self._server: socketserver.UnixStreamServer | None = None
        self._inode = 0

    def start(self) -> str | None:
        """Listen; or say why not."""
        address = _address(self.path)
        if address is None:
            return f"{self.path}: path too long for a socket"
        if alive(self.path):
            return f"{self.path}: another service answers 'kb index' for this index folder"
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        if os.path.lexists(self.path):
            os.unlink(self.path)  # left behind by a service that did not stop cleanly
        handle = self._handle

        class Connection(socketserver.StreamRequestHandler):
            timeout = REQUEST_TIMEOUT

            def handle(self) -> None:
                if not _same_user(self.connection):
                    return
                try:
                    request = json.loads(self.rfile.readline())
                except (OSError, ValueError):
                    return
                if not isinstance(request, dict):
                    return
                self.connection.settimeout(None)  # a build takes as long as it takes
                handle(request, self._sender())

            def _sender(self) -> Send:
                gone = False

                def send(message: dict[str, Any]) -> None:
                    nonlocal gone
                    if gone:
                        return
                    try:
                        self.wfile.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
                        self.wfile.flush()
                    except OSError:  # the command was interrupted; the build goes on
                        gone = True

                return send

        self._server = socketserver.UnixStreamServer(address, Connection)
        os.chmod(self.path, 0o600)
        self._inode = os.stat(self.path).st_ino
        # Polled this often for a stop: the service's shutdown waits up to that long.
        threading.Thread(target=self._server.serve_forever, args=(0.05,),
                         name="kb-index-listener", daemon=True).start()
        return None

    def close(self) -> None:
        """Stop listening (after the build under way, if any) and remove the socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass


def _same_user(sock: socket.socket) -> bool:
    if not hasattr(socket, "SO_PEERCRED"):  # not Linux: the socket's mode (0600) must do
        return True
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()
