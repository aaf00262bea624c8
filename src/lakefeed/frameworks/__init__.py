"""Framework adapters: numpy batches into torch, TensorFlow and JAX. Each imports its framework lazily."""
