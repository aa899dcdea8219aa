"""A plugin that is installed but cannot be imported (its dependency is missing)."""
