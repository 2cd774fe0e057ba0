import typer

app = typer.Typer(help="States, authorities and treaty status.", no_args_is_help=True)
