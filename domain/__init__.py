"""The support case model: statuses, who may move a case where, and deadlines.

Nothing in this package imports Temporal, so every rule can be tested as plain
Python and the workflow stays a thin shell around it.
"""
