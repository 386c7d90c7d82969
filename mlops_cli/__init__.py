"""mlops: take a trained model from weights on disk to a versioned, routed, tested endpoint."""

__version__ = "0.1.0"
