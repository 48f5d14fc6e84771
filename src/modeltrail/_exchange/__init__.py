"""Moving ledgers in and out: the JSON model-version document and the MLflow import."""
