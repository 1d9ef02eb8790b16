"""Vector indexes behind one API (`VectorIndex`): exact cosine kNN, random-hyperplane LSH,
k-means (IVF) with optional PCA, and neural (learned) LSH. `make_index` and `load_index` reach
every kind."""

from semret.indexes.base import VectorIndex, index_kinds, load_index, make_index
from semret.indexes.exact import ExactIndex
from semret.indexes.kmeans import KMeansIndex
from semret.indexes.lsh import RandomHyperplaneLSH
from semret.indexes.neural_lsh import NeuralLSH

__all__ = ["ExactIndex", "VectorIndex", "index_kinds", "load_index", "make_index"]
__all__ += ["KMeansIndex", "RandomHyperplaneLSH"]
__all__ += ["NeuralLSH"]
