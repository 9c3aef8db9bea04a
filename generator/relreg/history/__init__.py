"""Everything read from git: release dates and ids, the deployment log, and the work cache
kept in the repository's git folder."""
