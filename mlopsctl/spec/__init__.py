"""The spec layer: YAML -> JSON-Schema validation -> frozen dataclasses, errors as located values.

Imports nothing else of mlopsctl but :mod:`mlopsctl.errors`.
"""
