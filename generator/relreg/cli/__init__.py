"""The `relreg` command line: one module per command group, assembled in `main`. Commands only parse
options and call the stages."""
