"""The device side: the update decision (pure) and the reference client that fetches and
verifies the static device documents."""
