from __future__ import annotations

import getpass
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from cyberpact.accounts import mfa, service
from cyberpact.config import MAX_TOKEN_DAYS
from cyberpact.kit.cli import References, cli_actor, console, friendly, unit_of_work
from cyberpact.kit.errors import InvalidInput, Problem
from cyberpact.kit.ids import parse_uuid

users = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
tokens = typer.Typer(help="Manage personal API tokens.", no_args_is_help=True)


def _password(value: str | None) -> str:
    if value:
        return value
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat: "):
        raise InvalidInput("Passwords differ", [Problem("password", "the two entries differ")])
    return first


@users.command("create")
@friendly
def users_create(
    username: str,
    role: Annotated[list[str] | None, typer.Option("--role", "-r", help="repeat for several roles")] = None,
    display_name: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone")] = "UTC",
    password: Annotated[
        str | None, typer.Option(envvar="CYBERPACT_NEW_PASSWORD", help="prompted for when absent")
    ] = None,
) -> None:
    """Create a user."""
    # Before the prompt: a refused name should not cost the operator a password typed twice.
    service.check_username(username)
    secret = _password(password)
    with unit_of_work() as (session, _, _db):
        user = service.create_user(
            session,
            cli_actor(),
            username=username,
            password=secret,
            display_name=display_name,
            email=email,
            roles=role or [],
            timezone=timezone,
        )
        console.print(
            f"created user {user.username} ({user.id}) roles: {', '.join(sorted(user.roles)) or '-'}"
        )


@users.command("list")
@friendly
def users_list() -> None:
    """List users and their roles."""
    with unit_of_work(read_only=True) as (session, _, _db):
        table = Table(References("username"), "name", "roles", "disabled", "created")
        for u in service.list_users(session):
            table.add_row(
                u.username,
                u.display_name,
                ", ".join(sorted(u.roles)),
                "yes" if u.disabled else "",
                u.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        console.print(table)


@users.command("disable")
@friendly
def users_disable(username: str) -> None:
    """Disable a user, revoking their tokens and closing their desk sessions."""
    with unit_of_work() as (session, _, _db):
        service.set_disabled(session, cli_actor(), service.get_user(session, username), True)
        console.print(f"disabled {username}; its tokens are revoked and its desk sessions closed")


@users.command("enable")
@friendly
def users_enable(username: str) -> None:
    """Enable a disabled user again; their old tokens and desk sessions stay closed."""
    with unit_of_work() as (session, _, _db):
        service.set_disabled(session, cli_actor(), service.get_user(session, username), False)
        console.print(f"enabled {username}; they sign in afresh")


@users.command("reset-factor")
@friendly
def users_reset_factor(username: str) -> None:
    """Remove a user's second factor (a lost phone); they enrol a new one at their next sign-in.

    Check who is asking out of band first. Their recovery codes stop working and their desk sessions close.
    """
    with unit_of_work() as (session, _, _db):
        user = service.get_user(session, username)
        had = mfa.enrolled(session, user)
        mfa.reset_factor(session, cli_actor(), user)
        console.print(
            f"{username}: second factor {'removed' if had else 'was not enrolled'}; desk sessions closed; "
            "they enrol a new one at their next sign-in"
        )


@users.command("password")
@friendly
def users_password(
    username: str,
    password: Annotated[
        str | None, typer.Option(envvar="CYBERPACT_NEW_PASSWORD", help="prompted for when absent")
    ] = None,
) -> None:
    """Set a user's password; their desk sessions and tokens close.

    Check who is asking out of band first. Any lock-out from failed sign-ins ends.
    """
    # The user first, so that nobody types a password twice for a mistyped name.
    with unit_of_work(read_only=True) as (session, _, _db):
        service.get_user(session, username)
    secret = _password(password)
    with unit_of_work() as (session, _, _db):
        service.set_password(session, cli_actor(), service.get_user(session, username), secret)
    console.print(f"password of {username} set; their desk sessions and tokens are closed")


@users.command("roles")
@friendly
def users_roles(
    username: str,
    role: Annotated[list[str] | None, typer.Option("--role", "-r", help="the full new set; repeat")] = None,
) -> None:
    """Show a user's roles, or replace them with the --role options given."""
    with unit_of_work(read_only=role is None) as (session, _, _db):
        user = service.get_user(session, username)
        if role is not None:
            service.set_roles(session, cli_actor(), user, role)
        console.print(f"{username}: {', '.join(sorted(user.roles)) or '(no roles)'}")


@tokens.command("create")
@friendly
def tokens_create(
    username: str,
    name: Annotated[str, typer.Option(help="what the token is for")] = "cli",
    days: Annotated[int, typer.Option(min=1, max=MAX_TOKEN_DAYS)] = 90,
) -> None:
    """Issue a token for a user; it is printed once and never again."""
    with unit_of_work() as (session, _, _db):
        _, secret = service.issue_token(
            session, cli_actor(), service.get_user(session, username), name, timedelta(days=days)
        )
    typer.echo(secret)


@tokens.command("list")
@friendly
def tokens_list(username: Annotated[str | None, typer.Argument()] = None) -> None:
    """List tokens (never their secrets)."""
    with unit_of_work(read_only=True) as (session, _, _db):
        user = service.get_user(session, username) if username else None
        table = Table(
            "id", References("user"), "name", References("prefix"), "expires", "revoked", "last used"
        )
        for t in service.list_tokens(session, user):
            owner = service.get_user(session, t.user_id).username
            table.add_row(
                str(t.id),
                owner,
                t.name,
                t.prefix + "…",
                t.expires_at.strftime("%Y-%m-%d"),
                t.revoked_at.strftime("%Y-%m-%d") if t.revoked_at else "",
                t.last_used_at.strftime("%Y-%m-%d %H:%M") if t.last_used_at else "",
            )
        console.print(table)


@tokens.command("revoke")
@friendly
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by id."""
    tid = parse_uuid(token_id)
    if tid is None:
        raise InvalidInput("Bad token id", [Problem("token_id", "not a UUID")])
    with unit_of_work() as (session, _, _db):
        service.revoke_token(session, cli_actor(), tid)
    console.print(f"revoked {token_id}")
