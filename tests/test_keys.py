"""API keys: made once, stored as a hash, listed and revoked; the kb keys commands."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kb.cli import app as cli
from kb.errors import KBError
from kb.keys import ROLES, Permission, create_key, hash_secret, looks_like_key, revoke
from kb.storage import SqlStore

runner = CliRunner()


@pytest.fixture
def store(tmp_path):
    return SqlStore(f"sqlite:///{tmp_path}/gaps.sqlite3")


def test_only_a_hash_of_a_key_is_stored(store, tmp_path):
    key, secret = create_key(store, "alice", "agent", "public")
    assert looks_like_key(secret) and len(secret) == 46
    assert store.key_by_hash(hash_secret(secret)) == key
    assert store.key_by_hash(hash_secret(secret + "x")) is None
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("gaps.sqlite3*"))
    assert secret.encode() not in raw and hash_secret(secret).encode() in raw


def test_keys_are_unique_and_random(store):
    secrets = {create_key(store, f"k{n}", "agent")[1] for n in range(20)}
    assert len(secrets) == 20
    assert len({k.id for k in store.keys()}) == 20


@pytest.mark.parametrize(("name", "role", "audience", "message"), [
    ("", "agent", "internal", "key name"),
    ("has space", "agent", "internal", "key name"),
    ("-dash", "agent", "internal", "key name"),
    ("x" * 65, "agent", "internal", "key name"),
    ("ok", "boss", "internal", "unknown role"),
    ("ok", "agent", "everyone", "unknown audience"),
])
def test_bad_key_requests(store, name, role, audience, message):
    with pytest.raises(KBError, match=message):
        create_key(store, name, role, audience)
    assert store.keys() == []


def test_revoke_by_name_or_id_and_reuse_the_name(store):
    first, secret = create_key(store, "crm", "ticket-system")
    with pytest.raises(KBError, match="exists already"):
        create_key(store, "crm", "agent")
    revoke(store, "crm")
    assert store.key_by_hash(hash_secret(secret)).revoked is not None
    with pytest.raises(KBError, match="no active key"):
        revoke(store, "crm")
    second, _ = create_key(store, "crm", "agent")
    revoke(store, second.id)
    assert [k.revoked is not None for k in store.keys()] == [True, True]


def test_roles_grant_what_the_issue_says():
    p = Permission
    assert ROLES["agent"] == {p.SEARCH, p.SUGGEST, p.FEEDBACK, p.READ_ARTICLES}
    assert ROLES["ticket-system"] == {p.SUGGEST, p.FEEDBACK}
    assert ROLES["writer"] == ROLES["agent"] | {p.GAPS, p.ARTICLE_STATS, p.INDEX_STATUS}
    assert ROLES["admin"] == set(Permission)


def test_the_keys_commands(tmp_path):
    index = ["--index", str(tmp_path / "index")]
    made = runner.invoke(cli, ["keys", "create", "--name", "portal", "--role", "agent",
                               "--audience", "public", *index])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert looks_like_key(secret) and "shown this once" in made.stderr
    listed = runner.invoke(cli, ["keys", "list", "--json", *index])
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["role"], r["audience"], r["revoked"]) for r in rows] == [
        ("portal", "agent", "public", None)]
    assert secret not in listed.stdout and hash_secret(secret) not in listed.stdout
    table = runner.invoke(cli, ["keys", "list", *index])
    assert "portal" in table.stdout and secret not in table.stdout
    assert runner.invoke(cli, ["keys", "revoke", "portal", *index]).exit_code == 0
    assert json.loads(runner.invoke(cli, ["keys", "list", "--json", *index]).stdout) == []
    everything = json.loads(runner.invoke(cli, ["keys", "list", "--all", "--json",
                                                *index]).stdout)
    assert everything[0]["revoked"] is not None
    again = runner.invoke(cli, ["keys", "revoke", "portal", *index])
    assert again.exit_code == 2 and again.stderr.startswith("error: no active key")
    bad = runner.invoke(cli, ["keys", "create", "--name", "x", "--role", "boss", *index])
    assert bad.exit_code == 2 and "unknown role 'boss'" in bad.stderr
    assert "Traceback" not in bad.output
