"""Vector indexes behind one API (`VectorIndex`): exact cosine kNN, random-hyperplane LSH (as
buckets and as Hamming-ranked codes), k-means (IVF) with optional PCA, HNSW, neural LSH as
published (PermGNN), semret's neural LSH variant and FourierHashNet-style learned LSH; faiss does
the scanning where it can. `make_index` and `load_index` reach every kind."""

from semret.indexes.base import VectorIndex, index_kinds, load_index, make_index
from semret.indexes.exact import ExactIndex
from semret.indexes.fourier_lsh import FourierLSHIndex
from semret.indexes.hnsw import HnswIndex
from semret.indexes.kmeans import KMeansIndex
from semret.indexes.lsh import RandomHyperplaneLSH
from semret.indexes.lsh_codes import LSHCodesIndex
from semret.indexes.neural_lsh import NeuralLSHIndex
from semret.indexes.neural_lsh_knn import KnnNeuralLSHIndex

__all__ = ["ExactIndex", "VectorIndex", "index_kinds", "load_index", "make_index"]
__all__ += ["HnswIndex", "KMeansIndex", "LSHCodesIndex", "RandomHyperplaneLSH"]
__all__ += ["FourierLSHIndex", "KnnNeuralLSHIndex", "NeuralLSHIndex"]
