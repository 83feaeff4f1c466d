"""The book stage."""
