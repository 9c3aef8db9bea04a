"""relreg: a firmware release registry that lives in git and is served as static files."""

__version__ = "0.1.0"
