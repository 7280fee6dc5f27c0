"""Data: dataparsers, colliders and the synthetic scene generator."""
