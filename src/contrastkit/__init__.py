"""contrastkit."""
