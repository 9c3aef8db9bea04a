"""Reading and checking a registry: source files, strict YAML, schemas, rules, diagnostics,
the typed model and version schemes. Pure but for reading the files; imports nothing else of relreg."""

CONFIG_FILE = "registry.yaml"  # the file that marks a registry folder
