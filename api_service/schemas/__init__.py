"""Pydantic models of the HTTP contract: request bodies, query strings and response data.

The handlers validate with them and the OpenAPI document is generated from the same classes.
"""
