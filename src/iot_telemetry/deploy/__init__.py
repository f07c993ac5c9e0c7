"""Model archive packaging and deployment targets (local, SageMaker)."""
