"""Where a build looks for signing keys (names only: a module light enough for every build's first step)."""

KEYS_FILE = "keys.yaml"  # in the registry folder
ENV_VAR = "RELREG_SIGNING_KEY"  # private key(s), PEM, or a path to them
