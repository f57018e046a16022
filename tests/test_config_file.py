"""The TOML config file (KB_CONFIG): below the environment and flags, with clear errors."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kb import __version__
from kb.cli import app
from kb.config import Settings, load_settings
from kb.errors import ConfigError, error_lines


def write(tmp_path: Path, text: str, name: str = "kb.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_is_read_with_the_variables_names_or_the_fields(tmp_path, monkeypatch):
    path = write(tmp_path, 'KB_PORT = 9001\nindex = "idx"\npublic_only = true\n'
                           'log_format = "text"\n')
    monkeypatch.setenv("KB_CONFIG", str(path))
    cfg = load_settings()
    assert (cfg.port, cfg.index, cfg.public_only, cfg.log_format) == (9001, Path("idx"), True,
                                                                       "text")
    assert load_settings(config=path) == cfg


def test_environment_and_flags_override_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, 'port = 9001\nhost = "0.0.0.0"\nkeep_versions = 5\n')
    monkeypatch.setenv("KB_CONFIG", str(path))
    monkeypatch.setenv("KB_PORT", "9002")
    cfg = load_settings(keep_versions=2)
    assert (cfg.port, cfg.host, cfg.keep_versions) == (9002, "0.0.0.0", 2)


def test_another_process_environment_names_its_own_file(tmp_path, monkeypatch):
    mine = write(tmp_path, "port = 1111\n", "mine.toml")
    write(tmp_path, "port = 2222\nbatch_size = 8\n", "theirs.toml")
    monkeypatch.setenv("KB_CONFIG", str(mine))
    cfg = load_settings({"KB_CONFIG": "theirs.toml", "KB_BATCH_SIZE": "16"}, cwd=tmp_path)
    assert (cfg.port, cfg.batch_size) == (2222, 16)
    assert load_settings({"KB_ARTICLES": "a"}) == Settings(articles=Path("a"), config=None)


@pytest.mark.parametrize(("text", "expected"), [
    ('port = 80\nprot = 8000\n', r"kb.toml:2: unknown setting 'prot' \(did you mean 'port'\?\)"),
    ('host = "x"\nport = "eighty"\n', r"kb.toml:2: port = 'eighty': Input should be a valid "
                                      r"integer"),
    ('port = 80\nKB_PORT = 81\n', r"kb.toml:2: 'KB_PORT' sets 'port' again"),
    ('\n\nport = \n', r"kb.toml:3: not valid TOML"),
    ('[server]\nport = 1\n', r"kb.toml:1: 'server' is a table"),
    ('config = "other.toml"\n', r"kb.toml:1: unknown setting 'config'"),
])
def test_a_bad_file_names_the_file_line_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_settings(config=path)
    assert error_lines(caught.value) == [caught.value.message]
    assert caught.value.message.startswith(str(path))


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nowhere.toml:0: config file not found"):
        load_settings({"KB_CONFIG": str(tmp_path / "nowhere.toml")})


def test_the_command_line_reports_a_bad_file_and_prints_its_version(tmp_path):
    path = write(tmp_path, "batch_size = 0\n")
    result = CliRunner().invoke(app, ["stats"], env={"KB_CONFIG": str(path)})
    assert result.exit_code == 2
    assert f"{path}:1: batch_size = 0: Input should be greater than or equal to 1" in result.output
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"kb {__version__}\n")
