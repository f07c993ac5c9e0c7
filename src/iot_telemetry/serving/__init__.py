"""SageMaker container handler functions and the local endpoint server."""
