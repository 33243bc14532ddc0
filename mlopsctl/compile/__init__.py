"""Spec -> Graph: the DAG of stage descriptions, and its rendering as a standard dvc.yaml."""
