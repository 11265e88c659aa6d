"""Built-in captioner backends; importing this package registers them."""
from captioner.backends import descriptor  # noqa: F401
