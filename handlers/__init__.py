"""Slack, HTTP and Lambda adapters: parse the payload, call bot/, render, send."""
