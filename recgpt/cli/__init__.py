"""The `recgpt` command line, one module per command group; `recgpt.app` assembles them."""
