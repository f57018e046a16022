"""The hand-over of ``kb index`` to a running service: the command's side and the socket."""

import os
import socket
import stat

import pytest

from kb import resident
from kb.resident import SOCKET, Listener, hand_over, index_flags


@pytest.mark.parametrize(("argv", "flags"), [
    (["index"], {}),
    (["index", "--articles", "kb", "--index=idx", "--model", "m", "--calibration", "c.json"],
     {"articles": "kb", "index": "idx", "model": "m", "calibration": "c.json"}),
    (["index", "--local"], None),  # the full command line's business, as is anything unknown
    (["index", "--help"], None),
    (["index", "--articles"], None),
    (["index", "extra"], None),
    (["search", "vpn"], None),
    ([], None),
])
def test_only_index_commands_it_understands_are_handed_over(argv, flags):
    assert index_flags(argv) == flags


def test_without_a_service_the_command_builds_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_INDEX", str(tmp_path))
    assert hand_over(["index"]) is None
    # A socket left behind by a service that was killed answers nothing.
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(tmp_path / SOCKET))
    left.close()
    assert hand_over(["index"]) is None


@pytest.fixture
def listening(tmp_path, monkeypatch):
    """A listener whose handler replays ``script`` and records the requests it got."""
    requests, script = [], []

    def handle(request, send):
        requests.append(request)
        for message in script:
            send(message)

    listener = Listener(tmp_path, handle)
    assert listener.start() is None
    monkeypatch.chdir(tmp_path)
    yield listener, requests, script
    listener.close()


def test_the_service_output_and_status_become_the_command_s(listening, capsys, monkeypatch):
    listener, requests, script = listening
    monkeypatch.setenv("KB_ARTICLES", "docs")
    monkeypatch.setenv("HOME_NOT_SENT", "x")
    script += [{"progress": [1, 2]}, {"out": "published v2"}, {"err": "a warning"}, {"exit": 3}]
    assert hand_over(["index", "--index", ".", "--model", "m"]) == 3
    out, err = capsys.readouterr()
    assert out == "published v2\n" and err == "a warning\n"  # no progress line off a terminal
    [request] = requests
    assert request["cwd"] == os.getcwd() and request["flags"] == {"index": ".", "model": "m"}
    assert request["env"]["KB_ARTICLES"] == "docs" and "HOME_NOT_SENT" not in request["env"]


def test_a_declined_build_is_built_here(listening, capsys):
    _, _, script = listening
    script.append({"declined": "the service runs model 'x'"})
    assert hand_over(["index", "--index", "."]) is None
    assert "the service runs model 'x'; building in this process" in capsys.readouterr().err


def test_a_service_gone_mid_build_is_an_error(listening, capsys):
    _, _, script = listening
    script.append({"out": "embedding"})  # and then the connection closes without a status
    assert hand_over(["index", "--index", "."]) == 1
    assert "stopped before the build finished" in capsys.readouterr().err


def test_only_the_service_user_is_answered(listening, monkeypatch, capsys):
    listener, requests, _ = listening
    assert stat.S_IMODE(os.stat(listener.path).st_mode) == 0o600
    monkeypatch.setattr(resident.os, "getuid", lambda: 4242)  # as if the peer were another user
    assert hand_over(["index", "--index", "."]) == 1
    assert requests == []


def test_one_listener_per_index_folder_and_no_socket_left_behind(listening, tmp_path):
    listener, _, _ = listening
    second = Listener(tmp_path, lambda request, send: None)
    assert "another service answers" in second.start()
    listener.close()
    assert not (tmp_path / SOCKET).exists()
    assert second.start() is None  # once the first has gone
    second.close()


def test_a_garbled_request_is_dropped_and_the_listener_goes_on(listening):
    listener, requests, script = listening
    for garbage in (b"not json\n", b"[1, 2]\n", b""):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(listener.path)
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(100) == b""  # closed without an answer
    script.append({"exit": 0})
    assert hand_over(["index", "--index", "."]) == 0 and len(requests) == 1
