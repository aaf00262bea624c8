"""Samplers: weighted, stratified, hard-example and balanced-batch index streams."""
