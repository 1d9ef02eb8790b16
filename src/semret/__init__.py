"""semret: semantic image retrieval over one SQL store."""

__version__ = "0.1.0"
