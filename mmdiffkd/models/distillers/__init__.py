"""distillers."""
