"""Report email: who may receive it, signed links, quotas and delivery records."""
