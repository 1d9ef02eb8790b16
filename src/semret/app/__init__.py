"""What a user does, as functions: import a collection, extract its features, classify it, link it
to words and build its graph, train and encode a hash model, build an index, query, evaluate.

The command line (`semret.cli`) is a thin layer over these functions, and users' own Python code
can call them the same way: each takes an engine (`semret.sql.engine.make_engine`) where it needs
the store, and returns plain values to show. This layer may use every package below it (sql,
vision, hashing, indexes, iwan, evaluation, core), never `semret.cli`. Importing it does not import
torch or faiss: the functions that need them import them when they run.
"""
