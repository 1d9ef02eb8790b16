"""Vision side of semret: class hierarchies (and the semantic similarity of classes)."""

from semret.vision.hierarchy import ClassHierarchy, available_hierarchies

__all__ = ["ClassHierarchy", "available_hierarchies"]
