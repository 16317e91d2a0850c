"""Catalog, vector index and query engine. Receives an encoder; never imports one."""
