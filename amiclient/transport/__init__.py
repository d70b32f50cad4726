"""Transports of the AMI client: how actions travel (``http``: AJAM over HTTP/HTTPS)."""
