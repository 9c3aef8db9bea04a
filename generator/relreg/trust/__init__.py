"""Keys, detached signatures on device documents, and the TUF repository."""
