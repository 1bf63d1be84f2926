"""Asset tags (/hvs/v2/tag-certificates, /hvs/v2/rpc/deploy-tag-certificate, /hvs/v2/rpc/clear-tag)."""
