"""The post-deploy checks `ops.validate_deployment` runs, grouped by what they look at."""
