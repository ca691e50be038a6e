"""Monitoring agent for MongooseIM hosts."""

__version__ = "0.1.0"
