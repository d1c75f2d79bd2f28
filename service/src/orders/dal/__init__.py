"""Data access: the only package that imports boto3, and only when a client is first needed."""
