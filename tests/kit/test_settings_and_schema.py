from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from conftest import DatabaseFactory
from cyberpact.accounts import service as accounts
from cyberpact.accounts.models import ApiToken, User
from cyberpact.app import create_app
from cyberpact.config import Settings
from cyberpact.kit import migrate
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.canonical import canonical_json, canonical_json_floatless
from cyberpact.kit.db import Database
from cyberpact.kit.errors import ConfigurationError
from cyberpact.models import metadata


def test_models_and_migrations_do_not_drift(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_serving_head_is_the_head_of_the_migration_scripts(db: Database) -> None:
    # A new migration without a new HEAD would make every node refuse to start after upgrading.
    assert migrate.head_revision() == migrate.HEAD
    assert migrate.current_revision(db.engine) == migrate.HEAD
    assert migrate.at_head(db.engine)


def test_the_unchosen_language_migration_keeps_every_user_and_what_hangs_off_them(
    db_factory: DatabaseFactory,
) -> None:
    # On SQLite, making users.locale nullable rebuilds the users table; a rebuild that dropped the old
    # table with foreign keys enforced would cascade to every role and token. Down and up again, with data.
    url = db_factory()
    db = Database(url)
    with db.transaction() as s:
        lan = accounts.create_user(s, SYSTEM, username="lan", password="p" * 12, roles=["officer"])
        anh = accounts.create_user(s, SYSTEM, username="anh", password="p" * 12, roles=["supervisor"])
        anh.locale = "vi"
        accounts.issue_token(s, SYSTEM, lan, "cli", timedelta(days=1))
    assert lan.locale is None
    db.dispose()
    command.downgrade(migrate.alembic_config(url), "0009")
    command.upgrade(migrate.alembic_config(url), "head")
    db = Database(url)
    with db.transaction(read_only=True) as s:
        users = {u.username: u for u in s.scalars(select(User))}
        assert users["lan"].locale == "en"  # the older schema had no "unchosen": English, as it was
        assert users["anh"].locale == "vi"
        assert (users["lan"].roles, users["anh"].roles) == ({"officer"}, {"supervisor"})
        assert s.scalars(select(ApiToken.user_id)).all() == [users["lan"].id]
    db.dispose()


def test_the_open_sightings_migration_finds_the_sightings_stored_before_what_they_sighted(
    db_factory: DatabaseFactory,
) -> None:
    import json
    import uuid

    from cyberpact.intel.models import IntelCollection, IntelObject, IntelOpenSighting
    from cyberpact.kit.time import utcnow

    url = db_factory()
    db = Database(url)
    now, held, missing = utcnow(), f"indicator--{uuid.uuid4()}", f"indicator--{uuid.uuid4()}"

    def row(cid: uuid.UUID, stix_id: str, **obj: str) -> IntelObject:
        raw = json.dumps({"type": stix_id.split("--")[0], "id": stix_id, **obj})
        return IntelObject(
            collection_id=cid, stix_id=stix_id, stix_type=stix_id.split("--")[0], version=now, date_added=now,
            is_latest=True, raw=raw,
        )  # fmt: skip

    with db.transaction() as s:
        c = IntelCollection(title="c", sharing_group=[], created_at=now, created_by="t")
        s.add(c)
        s.flush()
        waiting, answered = f"sighting--{uuid.uuid4()}", f"sighting--{uuid.uuid4()}"
        s.add_all(
            [
                row(c.id, held),
                row(c.id, answered, sighting_of_ref=held),
                row(c.id, waiting, sighting_of_ref=missing),
            ]
        )
        cid = c.id
    db.dispose()
    command.downgrade(migrate.alembic_config(url), "0012")
    command.upgrade(migrate.alembic_config(url), "head")
    db = Database(url)
    with db.transaction(read_only=True) as s:
        found = [(o.collection_id, o.sighting_id, o.target_id) for o in s.scalars(select(IntelOpenSighting))]
    db.dispose()
    assert found == [(cid, waiting, missing)]


def test_an_unmigrated_or_older_database_is_not_at_head(tmp_path: Path) -> None:
    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    assert migrate.current_revision(empty.engine) is None
    assert not migrate.at_head(empty.engine)
    empty.dispose()
    older_url = f"sqlite:///{tmp_path / 'older.db'}"
    migrate.upgrade(older_url, "0007")
    older = Database(older_url)
    assert migrate.current_revision(older.engine) == "0007"
    assert not migrate.at_head(older.engine)
    older.dispose()


@pytest.mark.parametrize("secret", [None, "dev-insecure-secret-change-me", "short"])
def test_refuses_to_start_outside_dev_with_weak_secret(tmp_path: Path, secret: str | None) -> None:
    kwargs = {
        "env": "prod",
        "data_dir": tmp_path,
        "key_passphrase": "a strong passphrase here",
        "base_url": "https://node.example",
    }
    if secret is not None:
        kwargs["secret_key"] = secret
    with pytest.raises(ConfigurationError, match="CYBERPACT_SECRET_KEY"):
        create_app(Settings(**kwargs))


def test_refuses_to_start_outside_dev_without_key_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CYBERPACT_KEY_PASSPHRASE", raising=False)
    s = Settings(env="prod", data_dir=tmp_path, secret_key="s" * 40, base_url="https://node.example")
    with pytest.raises(ConfigurationError, match="passphrase"):
        create_app(s)
    (tmp_path / "pp").write_text("passphrase from a file\n")
    assert (
        Settings(
            env="prod", data_dir=tmp_path, secret_key="s" * 40, key_passphrase_file=tmp_path / "pp"
        ).key_passphrase_value()
        == "passphrase from a file"
    )
    with pytest.raises(ConfigurationError, match="https"):
        create_app(
            Settings(env="prod", data_dir=tmp_path, secret_key="s" * 40, key_passphrase="long passphrase 1")
        )


def test_database_url_defaults_to_sqlite_in_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CYBERPACT_DATABASE_URL", raising=False)
    monkeypatch.setenv("CYBERPACT_DATA_DIR", str(tmp_path))
    assert Settings().sqlalchemy_url == f"sqlite:///{tmp_path.resolve() / 'cyberpact.db'}"


json_leaf = st.none() | st.booleans() | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1) | st.text()
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"])),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(json_value)
def test_fast_canonical_form_equals_rfc8785(value: object) -> None:
    try:
        expected = canonical_json(value)
    except Exception:  # rfc8785 refuses lone surrogates; so must we
        with pytest.raises(UnicodeEncodeError):
            canonical_json_floatless(value)
        return
    assert canonical_json_floatless(value) == expected
