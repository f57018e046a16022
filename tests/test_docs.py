"""The README is the contract newcomers read: every setting and command in the code is in it."""

import re
from pathlib import Path

from typer.main import get_command

from kb.cli import app
from kb.config import Settings

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented():
    missing = [f"KB_{name.upper()}" for name in Settings.model_fields
               if f"KB_{name.upper()}" not in README]
    assert not missing


def test_every_cli_command_is_documented():
    commands = get_command(app).commands  # type: ignore[attr-defined]
    missing = [name for name in commands if not re.search(rf"`kb {name}\b", README)]
    assert not missing


def test_quick_start_is_two_commands():
    assert "make serve" in README and "make test" in README
