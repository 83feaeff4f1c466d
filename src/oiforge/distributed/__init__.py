"""The distributed stage."""
