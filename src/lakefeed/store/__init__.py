"""The feature store: feature groups on the lakehouse, point-in-time training data, online serving."""
