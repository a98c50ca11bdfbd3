"""Task YAMLs that point lm-eval at the local mirror (see README.md beside them)."""
