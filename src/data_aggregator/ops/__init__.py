"""Operator tooling: verify, replay and consume bundles.

Nothing here is imported by the Lambda function; these modules run on operator machines and on the
on-premise consumer host, so they may use the network and the local filesystem freely.
"""
