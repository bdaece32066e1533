"""diffkd."""
