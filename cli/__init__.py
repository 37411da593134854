"""The composition root: the `shadowlab` command, which wires every stage together (`cli.main`)."""
