"""The command line: Typer adapters that parse, call one library function and render."""
