"""Vector indexes behind one API (`VectorIndex`): exact cosine kNN, random-hyperplane LSH,
k-means (IVF) with optional PCA, neural LSH as published (PermGNN) and semret's neural LSH variant.
`make_index` and `load_index` reach every kind."""

from semret.indexes.base import VectorIndex, index_kinds, load_index, make_index
from semret.indexes.exact import ExactIndex
from semret.indexes.kmeans import KMeansIndex
from semret.indexes.lsh import RandomHyperplaneLSH
from semret.indexes.neural_lsh import NeuralLSHIndex
from semret.indexes.neural_lsh_knn import KnnNeuralLSHIndex

__all__ = ["ExactIndex", "VectorIndex", "index_kinds", "load_index", "make_index"]
__all__ += ["KMeansIndex", "RandomHyperplaneLSH"]
__all__ += ["KnnNeuralLSHIndex", "NeuralLSHIndex"]
