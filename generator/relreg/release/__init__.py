"""The pull-request process: `check` and its policy for published releases, `new-release`, `init`."""
