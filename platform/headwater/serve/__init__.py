"""`headwater serve`: each model spec's champion behind an HTTP endpoint (docs/serving.md)."""
