"""The mirror stage."""
