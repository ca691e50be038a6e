"""The subcommands, one module each; `cli.py` lists them."""
