"""mlopsctl: declarative, GitOps-style pipeline-as-code for machine learning."""

__version__ = "0.1.0"
