"""``capmon serve`` and ``capmon user add|list|remove|passwd``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from capmon.catalog.models import Role
from capmon.cli.common import console, print_json, reported_errors, split_values, state

user_app = typer.Typer(help="Users of the service: roles and the sites they may see.")


def _password(from_stdin: bool) -> str:
    """The password from standard input (one line) or a hidden prompt typed twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    login: str,
    role: Annotated[Role, typer.Option("--role", help="admin, operator or viewer.")],
    site: Annotated[
        list[str] | None,
        typer.Option(
            "--site",
            help="Sites the user may see, comma-separated or repeated; ignored for admins.",
        ),
    ] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user. The password is asked for (never given on the command line)."""
    from capmon.users import add_user

    with reported_errors():
        workspace = state(ctx).workspace()
        user = add_user(
            workspace, login, _password(password_stdin), role, split_values(site) or (), email
        )
    console.print(
        f"user {user.login} ({user.role.value}) created; sites: "
        f"{', '.join(user.sites) or ('all' if user.role is Role.ADMIN else 'none')}"
    )


@user_app.command("passwd")
def user_passwd(
    ctx: typer.Context,
    login: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Change a user's password."""
    from capmon.users import set_password

    with reported_errors():
        set_password(state(ctx).workspace(), login, _password(password_stdin))
    console.print(f"password of {login} changed")


@user_app.command("list")
def user_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The users, their roles and sites."""
    from capmon.users import list_users

    with reported_errors():
        users = list_users(state(ctx).workspace())
    if as_json:
        print_json(
            [
                {"login": u.login, "role": u.role.value, "sites": list(u.sites), "email": u.email}
                for u in users
            ]
        )
        return
    table = Table("login", "role", "sites", "email")
    for u in users:
        table.add_row(
            u.login,
            u.role.value,
            "all" if u.role is Role.ADMIN else ", ".join(u.sites) or "none",
            u.email or "",
        )
    console.print(table)


@user_app.command("remove")
def user_remove(ctx: typer.Context, login: str) -> None:
    """Delete a user; their tokens stop working at once."""
    from capmon.users import remove_user

    with reported_errors():
        remove_user(state(ctx).workspace(), login)
    console.print(f"user {login} removed")


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")

    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        workers: Annotated[
            int, typer.Option(help="Dask worker processes for jobs (LocalCluster).")
        ] = 2,
        scheduler: Annotated[
            str | None,
            typer.Option(
                envvar="CAPMON_DASK_SCHEDULER",
                help="Run jobs on this Dask scheduler (tcp://HOST:PORT) instead.",
            ),
        ] = None,
        token_ttl: Annotated[int, typer.Option(help="Lifetime of bearer tokens, in seconds.")] = 8
        * 3600,
        public_url: Annotated[
            str | None, typer.Option(help="Base URL for links when behind a proxy.")
        ] = None,
    ) -> None:
        """Serve the OGC API - Processes, the STAC API, the map tiles and the web UI."""
        import uvicorn

        from capmon.orchestrator.execute import ClusterSpec
        from capmon.service import ServiceConfig, create_app
        from capmon.settings import Settings

        cli_state = state(ctx)
        with reported_errors():
            config = ServiceConfig(
                home=cli_state.home or Settings.from_environment().home,
                database_url=cli_state.database_url,
                token_ttl_seconds=token_ttl,
                cluster=ClusterSpec(workers=workers, threads=1, scheduler=scheduler),
                public_url=public_url,
            )
            app = create_app(config)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        base = (public_url or f"http://{shown}:{port}").rstrip("/")
        console.print(f"capmon serving {config.home} on http://{host}:{port}/ (Ctrl-C stops)")
        console.print(f"Web interface: {base}/ui/   API: {base}/", soft_wrap=True)
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=True)
