"""Where a package's files come from: a model folder, or a Hugging Face repository snapshot."""
