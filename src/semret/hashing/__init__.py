"""Semantic hashing: class embeddings, the hash network, Hamming search."""
