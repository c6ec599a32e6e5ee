"""Thin boto3 gateways: one client factory, one module per AWS service."""
