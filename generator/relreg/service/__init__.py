"""Operations on a built site: `serve` (preview and the seed's query API), `publish` to S3, `query`."""
