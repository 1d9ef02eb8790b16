"""What every layer of semret shares and nothing of semret is imported by: the search contract,
validation, scikit-learn-style parameters, spec strings, and the exact cosine and Hamming kernels."""
