"""The launcher: the `framewise` command, above every other package."""
